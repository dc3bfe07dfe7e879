"""Backups are consistent while the bot writes; a damaged database stops start-up clearly."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.dataout.backup import BackupError, backup
from bot.domain.study import SHIPPED_PLACEHOLDER_PHONE, Study, load_study
from storage import audit
from storage.db import Database
from tests.dataout_seed import SeedFile, seed_file


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, study: Study) -> SeedFile:
    return seed_file(tmp_path_factory.mktemp("backup-seed"), study)


@pytest.fixture
def db_file(seeded: SeedFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "diary.sqlite3"
    shutil.copy(seeded.path, path)
    monkeypatch.setenv("DIARYBOT_DB", str(path))
    monkeypatch.delenv("DIARYBOT_STUDY", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


async def test_backup_is_consistent_while_another_connection_writes(db_file: Path) -> None:
    db = await Database.open(db_file)
    stop = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        at = datetime(2026, 12, 10, tzinfo=UTC)
        while not stop.is_set():
            async with db.transaction() as conn:
                await audit.record(conn, at + timedelta(seconds=written), "system", "tick")
            written += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        while written < 20:  # noqa: ASYNC110 (polling another task's counter)
            await asyncio.sleep(0.001)
        result = await backup(str(db_file), db_file.parent / "copy.sqlite3")
        stop.set()
        await task
    finally:
        stop.set()
        await db.close()
    assert written > 20  # the bot's connection kept writing during the backup
    assert result.chain.ok and result.chain.checked > 100
    assert not (db_file.parent / "copy.sqlite3-wal").exists()  # one self-contained file
    with sqlite3.connect(result.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        copied = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    assert result.chain.checked == copied


def test_cli_backup_then_restore(
    db_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "backups" / "2026-12-09.sqlite3"
    out.parent.mkdir()
    assert main(["backup", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"backup written: {out}" in printed and "chain intact" in printed
    assert not list(out.parent.glob(".*.part"))
    with sqlite3.connect(db_file) as conn:
        entry = conn.execute("SELECT actor, entity FROM audit WHERE action = 'backup'").fetchone()
    assert entry == ("cli", "backup:2026-12-09.sqlite3")

    # Restore (docs/data.md): stop the bot, replace the file, remove the old -wal/-shm.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    shutil.copy(out, db_file)
    assert main(["audit", "verify"]) == 0
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT COUNT(*) FROM patients").fetchone()[0] == 3


def test_cli_backup_never_overwrites(
    db_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "old-backup.sqlite3"
    out.write_bytes(b"the only good copy")
    assert main(["backup", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"the only good copy"
    missing = tmp_path / "no-such-folder" / "b.sqlite3"
    assert main(["backup", "--out", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


async def test_backup_refusal_leaves_no_partial_file(tmp_path: Path, db_file: Path) -> None:
    out = tmp_path / "b.sqlite3"
    out.write_bytes(b"x")
    with pytest.raises(BackupError):
        await backup(str(db_file), out)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # noqa: ASYNC240


def _damage_root_page(path: Path, table: str) -> None:
    """Zero the page-type byte of a table's root page (a disk error in the middle of a file)."""
    with sqlite3.connect(path) as conn:
        if table == "filler":
            conn.execute("CREATE TABLE filler (x TEXT)")
            conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 200,)] * 2000)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        page = root.fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as fp:
        fp.seek((page - 1) * size)
        fp.write(b"\x00")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        # quick_check lists the damage …
        ("filler", "PRAGMA quick_check failed: *** in database main ***; Page "),
        # … or SQLite refuses outright while checking: the same clear error either way.
        ("audit", "damaged database: database disk image is malformed"),
    ],
)
def test_damage_is_a_clear_error_at_start_up(
    db_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    message: str,
) -> None:
    _damage_root_page(db_file, table)
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"diarybot: {db_file}: {message}")
    assert err.endswith("\nStop the bot and restore the latest backup (docs/data.md).\n")
    assert "Traceback" not in err
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST-TOKEN")  # `run` stops before Telegram
    # `run` refuses the shipped placeholder phone before anything else: a site's own study file.
    site_study = db_file.parent / "site-study.toml"
    site_study.write_text(
        Path(load_study().source)
        .read_text(encoding="utf-8")
        .replace(SHIPPED_PLACEHOLDER_PHONE, "+86 21 5555 0100"),
        encoding="utf-8",
    )
    monkeypatch.setenv("DIARYBOT_STUDY", str(site_study))
    assert main(["run"]) == 1
    assert message in capsys.readouterr().err


def test_a_file_that_is_not_a_database_is_a_clear_error(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with db_file.open("r+b") as fp:
        fp.write(b"this is not SQLite" * 8)
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert f"diarybot: {db_file}: damaged database: file is not a database" in err
