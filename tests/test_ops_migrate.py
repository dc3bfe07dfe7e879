"""Upgrades: an old database (only the first migrations applied) is refused by every command but
`diarybot migrate` and `diarybot run`, unchanged; the migration takes a verified backup first,
and does not run when the backup cannot be made. New databases are still created whole."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
from pathlib import Path

import pytest

from bot.app import DiaryBot
from bot.cli import main
from bot.clock import FakeClock
from bot.domain.study import Study
from bot.ops import lock
from bot.ops.upgrade import BackupFirst
from storage.db import Database, MigrationNeeded, latest_version, migrations
from tests.ops_support import AT, OLD, build_old


def version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
async def old_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "diary.sqlite3"
    await build_old(path)
    monkeypatch.setenv("DIARYBOT_DB", str(path))
    monkeypatch.setenv("DIARYBOT_BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.delenv("DIARYBOT_STUDY", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


def test_an_old_database_is_refused_by_other_commands_and_unchanged(
    old_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert latest_version() > OLD
    before = digest(old_db)
    for argv in (["audit", "verify"], ["staff", "list"], ["export", "--format", "csv",
                 "--out", "x"], ["backup", "--out", "b.sqlite3"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == (
            f"diarybot: error: the database {old_db} is at schema version {OLD}, this diarybot"
            f" needs {latest_version()}: run `diarybot migrate`\n"
        )
    assert digest(old_db) == before and version(old_db) == OLD
    assert not Path("b.sqlite3").exists() and not Path("x").exists()


def test_migrate_takes_a_verified_backup_first(
    old_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(old_db) as conn:
        head = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()[0]
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    [backup] = (tmp_path / "backups").glob("*.sqlite3")
    assert backup.name.startswith(f"diarybot-before-migration-{OLD:04d}-to-{latest_version():04d}-")
    assert f"backup before migrating: {backup}" in out
    assert f"migrated to schema version {latest_version()}" in out
    # the backup is the old database, whole and private, its audit head beside it
    assert version(backup) == OLD
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 3
    info = json.loads(backup.with_name(backup.name + ".head.json").read_text())
    assert info["audit_head"] == head and info["audit_chain_ok"] is True
    # the database is migrated, its data kept
    assert version(old_db) == latest_version()
    with sqlite3.connect(old_db) as conn:
        values = conn.execute("SELECT item, value FROM answers ORDER BY item").fetchall()
    assert values == [("BLEED", "1"), ("PAIN", "3"), ("URGENCY", "1")]
    assert main(["audit", "verify"]) == 0
    capsys.readouterr()
    # a second run has nothing to do and takes no backup
    assert main(["migrate"]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert len(list((tmp_path / "backups").glob("*.sqlite3"))) == 1


def test_no_backup_no_migration(
    old_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    monkeypatch.setenv("DIARYBOT_BACKUP_DIR", str(blocked / "backups"))
    before = digest(old_db)
    assert main(["migrate"]) == 1
    assert "migration not run: the backup failed" in capsys.readouterr().err
    assert version(old_db) == OLD and digest(old_db) == before
    # and never while the bot runs
    monkeypatch.setenv("DIARYBOT_BACKUP_DIR", str(tmp_path / "backups"))
    with lock.acquire(old_db):
        assert main(["migrate"]) == 2
    assert "the bot is running" in capsys.readouterr().err
    assert version(old_db) == OLD


async def test_run_migrates_after_a_backup_and_versions_the_old_answers(
    tmp_path: Path, study: Study
) -> None:
    path = tmp_path / "diary.sqlite3"
    await build_old(path)
    with pytest.raises(MigrationNeeded):  # what the harness and sandbox would get
        await DiaryBot.create(db_path=path, study=study, clock=FakeClock(AT), token="1:x")
    assert version(path) == OLD
    first = BackupFirst(tmp_path / "backups", FakeClock(AT))
    bot = await DiaryBot.create(
        db_path=path, study=study, clock=FakeClock(AT), token="1:x", migrate=True,
        before_migrate=first,
    )  # fmt: skip
    try:
        [taken] = first.taken
        assert taken.result.chain.ok and taken.result.chain.checked == 3
        assert version(taken.result.path) == OLD
        rows = await bot.rt.db.fetchall("SELECT DISTINCT study_version FROM answers")
        assert [r[0] for r in rows] == [1]  # answers from before versioning: the first version
        assert await bot.rt.db.scalar("SELECT study_version FROM occurrences") == 1
    finally:
        await bot.stop()
    assert version(path) == latest_version()


async def test_a_new_database_is_created_whole(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "new.sqlite3")
    try:
        assert await db.schema_version() == latest_version() == migrations()[-1][0]
    finally:
        await db.close()
