"""The audit trail proves itself: signed entries, a head noted outside the server, no silent wipe.

Each attack edits a copy of a seeded database with the sqlite3 module, as someone with write
access to the file (but not to the audit key) could, and checks that `diarybot audit verify`
refuses it: the last entries cut off with `meta.audit_head` repointed (caught by the head the
digest, a backup or an export recorded), the table wiped, back-dated entries with every hash
recomputed (caught by the HMAC), time going backwards; and the key itself: made on first use,
0600, printed once, never in the database; a chain from before signatures is sealed once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest

from bot.cli import main
from bot.domain.study import Study
from storage import audit, keys
from storage.db import Database
from tests.dataout_seed import SeedFile, seed_file

COLUMNS = ("at", "actor", "action", "subject", "entity", "old_value", "new_value", "reason")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, study: Study) -> SeedFile:
    return seed_file(tmp_path_factory.mktemp("proof-seed"), study)


@pytest.fixture
def db_file(seeded: SeedFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "diary.sqlite3"
    shutil.copy(seeded.path, path)
    monkeypatch.setenv("DIARYBOT_DB", str(path))
    monkeypatch.delenv("DIARYBOT_STUDY", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def tamper(db_file: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_file)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    yield conn
    conn.close()


def verify(path: Path, expect: tuple[int, str] | None = None) -> audit.VerifyResult:
    async def run() -> audit.VerifyResult:
        db = await Database.open(path)
        try:
            return await audit.verify(db.conn, expect=expect)
        finally:
            await db.close()

    return asyncio.run(run())


def last(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return int(row[0]), str(row[1])


def rehash_from(conn: sqlite3.Connection, first: int, key: bytes | None = None) -> None:
    """Recompute every hash from entry `first` on and repoint the head, as an attacker would
    (and, given `key`, every signature too: only someone holding the key can)."""
    prev = conn.execute("SELECT hash FROM audit WHERE id = ?", (first - 1,)).fetchone()[0]
    rows = conn.execute(
        f"SELECT id, {', '.join(COLUMNS)} FROM audit WHERE id >= ? ORDER BY id", (first,)
    ).fetchall()
    for entry_id, *values in rows:
        digest = audit.entry_hash(prev, dict(zip(COLUMNS, values, strict=True)))
        mac = audit.entry_mac(key, entry_id, digest) if key else None
        conn.execute(
            "UPDATE audit SET prev_hash = ?, hash = ?, mac = COALESCE(?, mac) WHERE id = ?",
            (prev, digest, mac, entry_id),
        )
        prev = digest
    entry_id, digest = last(conn)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'audit_head'", (f"{entry_id} {digest}",))
    conn.commit()


def test_cut_tail_with_repointed_head_fails_against_the_head_noted_outside(
    db_file: Path, tamper: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    noted_id, noted_hash = last(tamper)  # what the digest / a backup carried off the server
    tamper.execute("DELETE FROM audit WHERE id > ?", (noted_id - 3,))
    new_id, new_hash = last(tamper)
    tamper.execute("UPDATE meta SET value = ? WHERE key = 'audit_head'", (f"{new_id} {new_hash}",))
    tamper.commit()
    # Alone the shortened chain is consistent (a rollback to an earlier state is undetectable
    # from inside the file: docs/data.md) …
    assert verify(db_file).ok
    # … but not against the head noted outside the server.
    result = verify(db_file, expect=(noted_id, noted_hash))
    assert (result.ok, result.first_bad_id) == (False, noted_id - 2)
    assert "noted outside the server" in (result.problem or "")
    assert main(["audit", "verify", "--expect-head", f"{noted_id}:{noted_hash}"]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN at entry {noted_id - 2}" in out and "last entries deleted" in out


def test_expect_head_ok_and_with_another_hash(
    db_file: Path, tamper: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    entry_id, digest = last(tamper)
    tamper.close()
    assert main(["audit", "verify", "--expect-head", f"{entry_id}:{digest}"]) == 0
    assert f"contains the expected head: entry {entry_id} {digest}" in capsys.readouterr().out
    middle = entry_id // 2
    wrong = "ab" * 32
    assert main(["audit", "verify", "--expect-head", f"{middle}:{wrong}"]) == 1
    assert f"BROKEN at entry {middle}: differs from the head" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main(["audit", "verify", "--expect-head", "12:nothex"])
    assert bad.value.code == 2
    assert "expected N:HASH" in capsys.readouterr().err


def test_wiped_trail_fails_when_patients_exist(
    db_file: Path, tamper: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper.execute("DELETE FROM audit")
    tamper.execute("DELETE FROM meta WHERE key = 'audit_head'")
    tamper.commit()
    result = verify(db_file)
    assert not result.ok and result.checked == 0
    assert result.problem == "the audit trail is empty but patients or diaries exist (wiped)"
    assert main(["audit", "verify"]) == 1
    assert "wiped" in capsys.readouterr().out


def test_empty_trail_of_a_new_database_is_ok(tmp_path: Path) -> None:
    assert verify(tmp_path / "new.sqlite3").ok


def test_back_dated_entry_with_recomputed_hashes_is_caught_by_the_signature(
    db_file: Path, tamper: sqlite3.Connection
) -> None:
    tamper.execute("UPDATE audit SET at = '2026-01-01T00:00:00.000000Z' WHERE id = 40")
    rehash_from(tamper, 40)
    result = verify(db_file)
    assert (result.ok, result.first_bad_id, result.problem) == (False, 40, audit.FORGED)


def test_forged_entries_appended_with_hashes_are_caught(
    db_file: Path, tamper: sqlite3.Connection
) -> None:
    entry_id, digest = last(tamper)
    content = dict.fromkeys(COLUMNS)
    content.update(at="2030-01-01T00:00:00.000000Z", actor="cli", action="backup")
    forged = audit.entry_hash(digest, content)
    tamper.execute(
        f"INSERT INTO audit (id, {', '.join(COLUMNS)}, prev_hash, hash, mac)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (entry_id + 1, *content.values(), digest, forged, "00" * 32),
    )
    tamper.execute(
        "UPDATE meta SET value = ? WHERE key = 'audit_head'", (f"{entry_id + 1} {forged}",)
    )
    tamper.commit()
    result = verify(db_file)
    assert (result.ok, result.first_bad_id, result.problem) == (False, entry_id + 1, audit.FORGED)
    # Without a signature at all, too.
    tamper.execute("UPDATE audit SET mac = NULL WHERE id = ?", (entry_id + 1,))
    tamper.commit()
    result = verify(db_file)
    assert (result.ok, result.first_bad_id, result.problem) == (False, entry_id + 1, audit.UNSIGNED)


def test_time_going_backwards_fails_even_with_valid_signatures(
    db_file: Path, tamper: sqlite3.Connection
) -> None:
    """Someone holding the key (or a bug) cannot back-date an entry unnoticed either."""
    tamper.execute("UPDATE audit SET at = '2026-01-01T00:00:00.000000Z' WHERE id = 60")
    rehash_from(tamper, 60, key=os.environ["DIARYBOT_AUDIT_KEY"].encode())
    result = verify(db_file)
    assert (result.ok, result.first_bad_id) == (False, 60)
    assert result.problem == "time goes backwards (back-dated entry)"


def test_the_wrong_key_fails_at_the_first_entry(
    db_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keys.ENV, "another-key-0123456789abcdef0123456789")
    result = verify(db_file)
    assert (result.ok, result.first_bad_id, result.problem) == (False, 1, audit.FORGED)


def test_key_file_is_made_once_private_printed_once_and_not_in_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(keys.ENV)
    monkeypatch.setattr(keys, "_terminal", lambda: True)  # someone at the console
    path = tmp_path / "d.sqlite3"

    async def write() -> None:
        db = await Database.open(path)
        async with db.transaction() as conn:
            await audit.record(conn, audit.datetime(2026, 12, 1, tzinfo=audit.UTC), "cli", "x")
        await db.close()

    asyncio.run(write())
    key_file = keys.key_path(path)
    key = key_file.read_text().strip()
    assert len(key) == 64 and key_file.stat().st_mode & 0o777 == 0o600
    err = capsys.readouterr().err
    assert key in err and "OFF this server" in err
    asyncio.run(write())  # the second start uses the file and says nothing
    assert key not in capsys.readouterr().err
    assert key.encode() not in path.read_bytes()
    assert verify(path).ok
    monkeypatch.setenv(keys.ENV, "short")
    with pytest.raises(keys.AuditKeyError):
        verify(path)


def test_a_new_key_is_not_printed_where_output_may_be_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(keys.ENV)
    monkeypatch.setattr(keys, "_terminal", lambda: False)  # e.g. the first start under systemd
    path = tmp_path / "d.sqlite3"
    assert verify(path).ok
    key = keys.key_path(path).read_text().strip()
    err = capsys.readouterr().err
    assert key not in err and str(keys.key_path(path)) in err and "OFF this server" in err


def test_a_chain_from_before_signatures_is_sealed_once(
    db_file: Path, tamper: sqlite3.Connection
) -> None:
    entry_id, _ = last(tamper)
    tamper.execute("UPDATE audit SET mac = NULL")  # as migration 0010 finds an older chain
    tamper.commit()
    assert verify(db_file).ok  # opening it appended a signed `audit_key` entry
    sealed = tamper.execute("SELECT id, action, mac FROM audit WHERE id > ?", (entry_id,))
    ((seal_id, action, mac),) = sealed.fetchall()
    assert (seal_id, action) == (entry_id + 1, "audit_key") and mac
    again = verify(db_file)  # and only once
    assert again.ok and again.unsigned == entry_id
    assert last(tamper)[0] == entry_id + 1


def test_a_database_made_to_look_older_than_signatures_is_still_checked(
    db_file: Path, tamper: sqlite3.Connection
) -> None:
    """user_version set back below 0010 (so that unsigned entries would pass): the signature
    column gives it away, and the re-hashed entry is still caught."""
    tamper.execute("UPDATE audit SET new_value = '10' WHERE id = 45")
    rehash_from(tamper, 45)
    tamper.execute("PRAGMA user_version = 9")
    tamper.commit()

    async def run() -> audit.VerifyResult:
        conn = await aiosqlite.connect(str(db_file))
        conn.row_factory = aiosqlite.Row
        try:
            return await audit.verify(conn, key=os.environ[keys.ENV].encode())
        finally:
            await conn.close()

    result = asyncio.run(run())
    assert (result.ok, result.first_bad_id, result.problem) == (False, 45, audit.FORGED)


@pytest.mark.parametrize(
    ("command", "label"),
    [
        (["backup", "--out", "copy.sqlite3"], "audit trail head in the backup"),
        (["export", "--format", "fhir", "--out", "study.json"], "audit trail head in the export"),
    ],
)
def test_backups_and_exports_record_the_head(
    db_file: Path, capsys: pytest.CaptureFixture[str], command: list[str], label: str
) -> None:
    assert main(command) == 0
    found = re.search(rf"{label}: (\d+):([0-9a-f]{{64}})", capsys.readouterr().out)
    assert found is not None
    number, digest = found.groups()
    with sqlite3.connect(db_file) as conn:
        (recorded,) = conn.execute(
            "SELECT new_value FROM audit WHERE action = ? ORDER BY id DESC LIMIT 1", (command[0],)
        ).fetchone()
    assert json.loads(recorded)["audit_head"] == f"{number} {digest}"
    assert main(["audit", "verify", "--expect-head", f"{number}:{digest}"]) == 0
