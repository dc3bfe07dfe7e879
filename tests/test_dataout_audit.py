"""The audit trail is tamper-evident: `diarybot audit verify` names the first bad entry.

Each test edits a copy of a seeded database directly with the sqlite3 module, as someone with
access to the file could (after dropping the append-only triggers), and checks that verify
reports exactly where the chain breaks — for an edited, a deleted (middle and last), a
reordered and a re-hashed entry.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main
from bot.domain.study import Study
from storage import audit
from storage.db import Database
from tests.dataout_seed import SeedFile, seed_file


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, study: Study) -> SeedFile:
    return seed_file(tmp_path_factory.mktemp("audit-seed"), study)


@pytest.fixture
def db_file(seeded: SeedFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "diary.sqlite3"
    shutil.copy(seeded.path, path)
    monkeypatch.setenv("DIARYBOT_DB", str(path))
    monkeypatch.delenv("DIARYBOT_STUDY", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return path


@pytest.fixture
def tamper(db_file: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection with the append-only triggers dropped (what an attacker would do)."""
    conn = sqlite3.connect(db_file)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    yield conn
    conn.close()  # tests commit what they change


def verify(path: Path) -> audit.VerifyResult:
    async def run() -> audit.VerifyResult:
        db = await Database.open(path)
        try:
            return await audit.verify(db.conn)
        finally:
            await db.close()

    return asyncio.run(run())


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]


def row(conn: sqlite3.Connection, entry: int) -> tuple[object, ...]:
    return conn.execute(
        "SELECT at, actor, action, subject, entity, old_value, new_value, reason, prev_hash, hash"
        " FROM audit WHERE id = ?",
        (entry,),
    ).fetchone()


def test_untouched_chain_is_ok_and_cli_prints_the_head(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    total = count(db_file)
    assert total > 100
    result = verify(db_file)
    assert result.ok and result.checked == total
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert f"audit trail OK: {total} entries" in out
    assert f"head: entry {total} " in out


def test_edited_entry_is_named(
    db_file: Path, tamper: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper.execute("UPDATE audit SET new_value = '0' WHERE id = 40")
    tamper.commit()
    result = verify(db_file)
    assert (result.ok, result.first_bad_id, result.checked) == (False, 40, 39)
    assert "edited" in (result.problem or "")
    assert main(["audit", "verify"]) == 1
    assert "BROKEN at entry 40: content changed (edited)" in capsys.readouterr().out


def test_deleted_middle_entry_is_named(db_file: Path, tamper: sqlite3.Connection) -> None:
    tamper.execute("DELETE FROM audit WHERE id = 57")
    tamper.commit()
    result = verify(db_file)
    assert (result.ok, result.first_bad_id) == (False, 57)
    assert result.problem == "entry 57 is missing (deleted)"


def test_deleted_last_entry_is_named(db_file: Path, tamper: sqlite3.Connection) -> None:
    last = count(db_file)
    tamper.execute("DELETE FROM audit WHERE id = ?", (last,))
    tamper.commit()
    result = verify(db_file)
    assert (result.ok, result.first_bad_id) == (False, last)
    assert "last entries deleted" in (result.problem or "")


def test_deleting_the_tail_stays_visible_after_new_entries(
    db_file: Path, tamper: sqlite3.Connection
) -> None:
    """The bot keeps writing after the tail was cut: the gap must not be closed silently."""
    last = count(db_file)
    tamper.execute("DELETE FROM audit WHERE id >= ?", (last - 1,))
    tamper.commit()
    tamper.close()

    async def write_more() -> None:
        db = await Database.open(db_file)
        async with db.transaction() as conn:
            await audit.record(conn, datetime(2026, 12, 10, tzinfo=UTC), "system", "later")
        await db.close()

    asyncio.run(write_more())
    result = verify(db_file)
    assert (result.ok, result.first_bad_id) == (False, last - 1)
    assert result.problem == f"entry {last - 1} is missing (deleted)"


def test_reordered_entries_are_named(db_file: Path, tamper: sqlite3.Connection) -> None:
    a, b = row(tamper, 30), row(tamper, 31)
    columns = "at, actor, action, subject, entity, old_value, new_value, reason, prev_hash, hash"
    sets = ", ".join(f"{c.strip()} = ?" for c in columns.split(","))
    tamper.execute(f"UPDATE audit SET {sets} WHERE id = 30", b)
    tamper.execute(f"UPDATE audit SET {sets} WHERE id = 31", a)
    tamper.commit()
    result = verify(db_file)
    assert (result.ok, result.first_bad_id) == (False, 30)
    assert "reordered" in (result.problem or "")


def test_rehashed_edit_breaks_the_link_to_the_next_entry(
    db_file: Path, tamper: sqlite3.Connection
) -> None:
    """Whoever recomputes an edited entry's hash cannot recompute its signature (no key)."""
    at, actor, action, subject, entity, old, _new, reason, prev, _h = row(tamper, 50)
    content = dict(
        at=at, actor=actor, action=action, subject=subject, entity=entity,
        old_value=old, new_value="10", reason=reason,
    )  # fmt: skip
    digest = audit.entry_hash(str(prev), content)
    tamper.execute("UPDATE audit SET new_value = '10', hash = ? WHERE id = 50", (digest,))
    tamper.commit()
    result = verify(db_file)
    assert (result.ok, result.first_bad_id) == (False, 50)
    assert result.problem == audit.FORGED


def test_show_lists_one_subject_in_utc_and_local_time(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "show", "--subject", "RP-002"]) == 0
    out = capsys.readouterr().out.splitlines()
    entries = [line for line in out if line.startswith("#")]
    assert entries and all("RP-002" in line for line in entries)
    assert not any("RP-001" in line for line in entries)
    submitted = next(line for line in entries if "diary_submitted" in line)
    # 12:30 UTC is 20:30 in Shanghai: both are shown.
    assert "12:30:00Z" in submitted and "20:30:00 CST" in submitted
    assert out[-1] == f"{len(entries)} entries (local time: Asia/Shanghai)"


def test_show_unknown_subject_is_a_usage_error(
    db_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = count(db_file)
    assert main(["audit", "show", "--subject", "RP-999"]) == 2
    assert "no subject 'RP-999'" in capsys.readouterr().err
    assert count(db_file) == before
