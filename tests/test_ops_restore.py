"""The restore drill (docs/deploy.md): back up, keep working, check the backup in a scratch copy,
refuse to restore while the bot runs, restore with the bot stopped and keep what was replaced.
A damaged or tampered backup is reported and never put in place."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from bot.cli import main
from bot.domain.study import Study
from bot.ops import lock
from tests.dataout_seed import SeedFile, seed_file


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, study: Study) -> SeedFile:
    return seed_file(tmp_path_factory.mktemp("restore-seed"), study)


@pytest.fixture
def db_file(seeded: SeedFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "diary.sqlite3"
    shutil.copy(seeded.path, path)
    monkeypatch.setenv("DIARYBOT_DB", str(path))
    monkeypatch.delenv("DIARYBOT_STUDY", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def count(path: Path, sql: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(sql).fetchone()[0])


def take_backup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "backups" / "drill.sqlite3"
    out.parent.mkdir(exist_ok=True)
    assert main(["backup", "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def test_restore_drill(db_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backup = take_backup(tmp_path, capsys)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    patients = count(db_file, "SELECT COUNT(*) FROM patients")
    diaries = count(db_file, "SELECT COUNT(*) FROM occurrences WHERE status = 'completed'")
    answers = count(db_file, "SELECT COUNT(*) FROM answers WHERE submitted_at IS NOT NULL")
    alerts = count(db_file, "SELECT COUNT(*) FROM alerts")
    entries = count(backup, "SELECT COUNT(*) FROM audit")
    assert patients == 3 and diaries > 0 and answers > 0 and alerts > 0

    # Work goes on after the backup: a new subject.
    assert main(["enroll", "--subject", "RP-004", "--injection-date", "2026-12-09"]) == 0
    capsys.readouterr()

    # 1. Check: a scratch copy, counts and chain; neither file changes.
    live, kept = digest(db_file), digest(backup)
    assert main(["restore", "--check", str(backup)]) == 0
    out = capsys.readouterr().out
    assert "integrity:      ok" in out
    assert (
        f"contents:       patients: {patients}, diaries: {diaries}, answers: {answers},"
        f" alerts: {alerts}, audit entries: {entries}"
    ) in out
    assert f"audit chain:    intact ({entries} entries, head {entries} " in out
    assert "ok: this backup can be restored" in out
    assert (digest(db_file), digest(backup)) == (live, kept)

    # 2. The bot is running: refused, nothing changes.
    with lock.acquire(db_file):
        assert main(["restore", str(backup)]) == 2
        err = capsys.readouterr().err
    assert err == f"diarybot: error: the bot is running on {db_file}: stop it before restoring\n"
    assert digest(db_file) == live
    assert not list(tmp_path.glob("diary.sqlite3.replaced-*"))

    # 3. Bot stopped: restored; the replaced database is kept, whole.
    assert main(["restore", str(backup)]) == 0
    out = capsys.readouterr().out
    [replaced] = [p for p in tmp_path.glob("diary.sqlite3.replaced-*") if p.suffix != ".lock"]
    assert f"kept as {replaced}" in out and f"restored {backup} -> {db_file}" in out
    assert count(replaced, "SELECT COUNT(*) FROM patients") == 4  # RP-004 is in the old one
    assert count(db_file, "SELECT COUNT(*) FROM patients") == 3
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    assert digest(backup) == kept  # the backup itself is never written to
    with sqlite3.connect(db_file) as conn:
        restore_entry = conn.execute(
            "SELECT actor, entity FROM audit WHERE action = 'restore'"
        ).fetchone()
    assert restore_entry == ("cli", "backup:drill.sqlite3")
    assert main(["audit", "verify"]) == 0  # the chain goes on intact after the restore


def test_a_damaged_or_tampered_backup_is_reported_and_not_restored(
    db_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = take_backup(tmp_path, capsys)
    live = digest(db_file)

    # An audit entry edited in the backup (triggers dropped by someone with file access).
    tampered = tmp_path / "tampered.sqlite3"
    shutil.copy(backup, tampered)
    with sqlite3.connect(tampered) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("UPDATE audit SET new_value = '\"9\"' WHERE id = 5")
    assert main(["restore", "--check", str(tampered)]) == 1
    captured = capsys.readouterr()
    assert "audit chain:    BROKEN at entry 5: content changed (edited)" in captured.out
    assert captured.err == f"diarybot: {tampered} failed the check\n"
    assert main(["restore", str(tampered)]) == 2
    assert "failed the check: audit chain broken at entry 5" in capsys.readouterr().err

    # Not a database at all.
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database" * 100)
    assert main(["restore", "--check", str(junk)]) == 2
    assert "not a usable SQLite database" in capsys.readouterr().err
    assert main(["restore", str(junk)]) == 2
    capsys.readouterr()

    # A missing file.
    assert main(["restore", str(tmp_path / "nope.sqlite3")]) == 2
    assert "no such file" in capsys.readouterr().err

    assert digest(db_file) == live
    assert not list(tmp_path.glob("diary.sqlite3.replaced-*"))
    assert not list(tmp_path.glob(".diary.sqlite3.restoring*"))


def test_check_compares_the_head_recorded_beside_the_backup(
    db_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = take_backup(tmp_path, capsys)
    with sqlite3.connect(backup) as conn:
        head = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()[0]
    beside = backup.with_name(backup.name + ".head.json")
    beside.write_text(f'{{"audit_head": "{head}"}}')
    assert main(["restore", "--check", str(backup)]) == 0
    assert "recorded head:  matches" in capsys.readouterr().out
    # A backup swapped for an older one (fewer entries) no longer matches its recorded head.
    beside.write_text('{"audit_head": "99999 abc"}')
    assert main(["restore", "--check", str(backup)]) == 1
    assert "recorded head:  DIFFERS: 99999 abc" in capsys.readouterr().out
