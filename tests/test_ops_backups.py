"""Scheduled backups inside the running bot, driven by the fake clock: one at once when there is
none, then one a day at the quiet hour; each verified, its audit head beside it, private; old
ones pruned (14 daily, 24 monthly); the hook runs after each, and a failing hook or backup is
logged loudly without stopping the bot."""

from __future__ import annotations

import json
import logging
import sqlite3
import stat
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.ops.backups import (
    BackupSchedule,
    Policy,
    policy_from_env,
    scheduled_backups,
    to_keep,
)
from tests.harness import Harness

SHANGHAI = ZoneInfo("Asia/Shanghai")

HOOK = """\
import os, shutil, sys
from pathlib import Path
remote = Path(sys.argv[1])
backup = Path(sys.argv[2])
assert os.environ["DIARYBOT_BACKUP_FILE"] == str(backup)
shutil.copy(backup, remote / backup.name)
shutil.copy(os.environ["DIARYBOT_BACKUP_HEAD"], remote / (backup.name + ".head.json"))
(remote / "token-seen").write_text(str("TELEGRAM_BOT_TOKEN" in os.environ))
"""


def schedule_of(h: Harness) -> BackupSchedule:
    schedule = h.bot.hooks.backups
    assert isinstance(schedule, BackupSchedule)
    return schedule


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def quiet_moment(day: date) -> datetime:
    """03:31 in Shanghai on `day`: just after the default quiet hour."""
    return datetime.combine(day, time(3, 31), tzinfo=SHANGHAI).astimezone(UTC)


async def test_daily_backups_verified_pruned_and_shipped_by_the_hook(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST-TOKEN")  # must not reach the hook
    folder = tmp_path / "backups"
    remote = tmp_path / "remote"
    remote.mkdir()
    script = tmp_path / "ship.py"
    script.write_text(HOOK)
    schedule = schedule_of(h)
    schedule.configure(Policy(folder, hook=f"{sys.executable} {script} {remote}"))

    # No backup yet: the next tick takes one at once.
    await h.advance(minutes=1)
    await schedule.wait_hooks()
    [(first_at, first)] = scheduled_backups(folder)
    assert first_at == h.clock.now().replace(microsecond=0)
    assert mode(folder) == 0o700 and mode(first) == 0o600
    head_file = first.with_name(first.name + ".head.json")
    assert mode(head_file) == 0o600
    info = json.loads(head_file.read_text())
    with sqlite3.connect(first) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        head = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()[0]
        entries = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert info["audit_head"] == head and info["audit_chain_ok"] is True
    assert info["audit_entries"] == entries > 0
    backup_entries = await h.rows("SELECT actor, entity FROM audit WHERE action = 'backup'")
    assert [tuple(r) for r in backup_entries] == [("system", f"backup:{first.name}")]
    # the hook shipped the backup and its head, with the path, and without the bot's token
    assert (remote / first.name).read_bytes() == first.read_bytes()
    assert (remote / head_file.name).read_bytes() == head_file.read_bytes()
    assert (remote / "token-seen").read_text() == "False"
    assert [r.returncode for r in schedule.hook_runs] == [0]
    await h.patient(501, "RP-001", lang="en")  # the bot is busy as usual meanwhile

    # Not due again before the quiet hour (03:30 Shanghai).
    await h.advance(hours=3)
    assert len(scheduled_backups(folder)) == 1

    # 75 days, one tick just after each quiet hour: one backup a day.
    day = h.clock.now().astimezone(SHANGHAI).date() + timedelta(days=1)
    last = day + timedelta(days=74)
    while day <= last:
        await h.set_time(quiet_moment(day))
        day += timedelta(days=1)
    await schedule.wait_hooks()
    assert len(schedule.hook_runs) == 76
    kept = scheduled_backups(folder)
    local_days = [at.astimezone(SHANGHAI).date() for at, _ in kept]
    # the last 14 days (Jan 31 to Feb 13), and the newest of each earlier month: the first
    # backup (Nov 30 2026) and Dec 31
    assert last == date(2027, 2, 13)
    expected_daily = [last - timedelta(days=n) for n in range(13, -1, -1)]
    expected_monthly = [date(2026, 11, 30), date(2026, 12, 31)]
    assert local_days == expected_monthly + expected_daily
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [p.name for _, p in kept] + [p.name + ".head.json" for _, p in kept]
    )

    # A downtime over two quiet hours: one catch-up backup at the first tick back.
    before = len(scheduled_backups(folder))
    await h.set_time(quiet_moment(last + timedelta(days=3)) - timedelta(hours=1))
    assert len(scheduled_backups(folder)) == before + 1
    assert scheduled_backups(folder)[-1][0] == h.clock.now().replace(microsecond=0)


async def test_a_failing_hook_or_backup_is_loud_and_the_bot_goes_on(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    folder = tmp_path / "backups"
    script = tmp_path / "fail.py"
    script.write_text("import sys\nprint('remote unreachable')\nsys.exit(3)\n")
    schedule = schedule_of(h)
    schedule.configure(Policy(folder, hook=f"{sys.executable} {script}"))
    with caplog.at_level(logging.INFO):
        await h.advance(minutes=1)
        await schedule.wait_hooks()
    assert len(scheduled_backups(folder)) == 1  # kept locally
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1
    assert "BACKUP HOOK FAILED (exit 3)" in failed[0].getMessage()
    assert "remote unreachable" in failed[0].getMessage()

    # The backup itself fails (the folder is a file): logged, retried an hour later, no crash.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    schedule.configure(Policy(blocked / "sub"))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        await h.advance(minutes=1)
    assert any("BACKUP FAILED" in r.getMessage() for r in caplog.records)
    ticks = h.bot.scheduler.ticks
    p = await h.patient(502, "RP-002", lang="en")  # the bot still answers
    assert p.last_text
    blocked.unlink()
    await h.advance(minutes=30)
    assert not scheduled_backups(blocked / "sub")  # not yet: retried after an hour
    await h.advance(minutes=31)
    assert len(scheduled_backups(blocked / "sub")) == 1
    assert h.bot.scheduler.ticks > ticks


def test_retention_keeps_the_newest_of_each_day_and_month() -> None:
    base = datetime(2027, 1, 1, 19, 30, tzinfo=UTC)  # 03:30 on Jan 2 in Shanghai
    stamps = [base + timedelta(days=n, hours=h) for n in range(100) for h in (0, 2)]
    kept = sorted(to_keep(stamps, "Asia/Shanghai", 14, 24))
    # local days Jan 2 to Apr 11: the last 14 days, and the newest of January and February
    # (March's and April's newest are among the 14 days)
    assert len(kept) == 14 + 2
    assert kept[-14:] == [base + timedelta(days=n, hours=2) for n in range(86, 100)]
    assert to_keep(stamps, "Asia/Shanghai", 1, 0) == {stamps[-1]}


def test_policy_from_the_environment(tmp_path: Path) -> None:
    db = tmp_path / "diary.sqlite3"
    default = policy_from_env(db, {})
    assert default == Policy(tmp_path / "backups")
    assert (default.at, default.keep_daily, default.keep_monthly) == (time(3, 30), 14, 24)
    assert policy_from_env(db, {"DIARYBOT_BACKUP_DIR": "off"}) is None
    custom = policy_from_env(
        db,
        {
            "DIARYBOT_BACKUP_DIR": str(tmp_path / "b"),
            "DIARYBOT_BACKUP_AT": "02:15",
            "DIARYBOT_BACKUP_KEEP_DAILY": "7",
            "DIARYBOT_BACKUP_HOOK": "rclone copy --quiet",
        },
    )
    assert custom == Policy(tmp_path / "b", time(2, 15), 7, 24, "rclone copy --quiet")
    for bad in ({"DIARYBOT_BACKUP_AT": "25:00"}, {"DIARYBOT_BACKUP_KEEP_DAILY": "0"}):
        with pytest.raises(ValueError, match="DIARYBOT_BACKUP_"):
            policy_from_env(db, bad)
