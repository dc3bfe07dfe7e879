"""Health data stays private on the server (issue 11, section 3).

- Every file the bot writes is 0600 and every folder it makes 0700, whatever the umask was:
  the database with its WAL and shared memory, the key file, backups, exports.
- An enrolment code leaves no trace the server keeps: not in the outbox once sent, not as a
  plain hash a stolen database could be brute-forced against.
- `diarybot enroll --reissue` replaces a code (the old one stops working) and `diarybot subject
  unlink` detaches a lost or hijacked Telegram account; both audited.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.cli import cmd_enroll, main
from bot.cliargs import NO_REASON_GIVEN, UsageError
from bot.dataout import exports
from bot.followup.cli import cmd_unlink
from bot.i18n import t
from bot.services import codes
from storage import audit, keys
from storage.db import Database
from tests.escalation_support import EN_COORD, day0_patient
from tests.harness import Harness

EN = t("en")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual default umask (files 0644): the bot must not rely on the caller's."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_database_wal_key_and_exports_are_private_even_under_umask_022(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(keys.ENV)
    path = tmp_path / "d.sqlite3"

    async def run() -> list[Path]:
        db = await Database.open(path)
        try:
            async with db.transaction() as conn:
                await audit.record(conn, datetime(2026, 12, 1, tzinfo=UTC), "cli", "x")
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), keys.key_path(path)]
            assert all(f.exists() for f in files)
            return [f for f in files if mode(f) != 0o600]
        finally:
            await db.close()

    with contextlib.redirect_stderr(io.StringIO()):  # the new key's notice
        assert asyncio.run(run()) == []
    export = exports.Export("csv", {"a.csv": b"x", "b.csv": b"y"}, 1, 1)
    written = exports.write(export, tmp_path / "out" / "csv")
    assert [mode(p) for p in written] == [0o600, 0o600]
    assert mode(tmp_path / "out") == 0o700 and mode(tmp_path / "out" / "csv") == 0o700


def test_cli_sets_umask_077_and_every_file_it_writes_is_private(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("DIARYBOT_DB", str(db))
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv(keys.ENV)
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["enroll", "--subject", "RP-001", "--injection-date", "2026-12-10"]) == 0
        (tmp_path / "backups").mkdir(mode=0o755)
        assert main(["backup", "--out", "backups/b.sqlite3"]) == 0
        assert main(["export", "--format", "csv", "--out", "csv"]) == 0
        assert main(["export", "--format", "odm", "--out", "odm/study.xml"]) == 0
    assert os.umask(0o077) == 0o077  # main() left the process with umask 077
    files = [
        db,
        keys.key_path(db),
        tmp_path / "backups" / "b.sqlite3",
        tmp_path / "odm" / "study.xml",
    ]
    files += sorted((tmp_path / "csv").iterdir())
    assert len(files) == 7
    assert {str(f.relative_to(tmp_path)): mode(f) for f in files} == {
        str(f.relative_to(tmp_path)): 0o600 for f in files
    }
    assert mode(tmp_path / "csv") == 0o700 and mode(tmp_path / "odm") == 0o700


async def table_text(h: Harness) -> str:
    dump = []
    for table in ("outbox", "enrolment_codes", "audit", "meta", "patients"):
        dump += [json.dumps(dict(r)) for r in await h.rows(f"SELECT * FROM {table}")]
    return "\n".join(dump)


async def test_an_enrolment_code_leaves_no_usable_trace_on_the_server(
    escalation_team: Harness,
) -> None:
    h = escalation_team
    coord = h.player(EN_COORD, "en")
    await coord.send("/enroll RP-004 2026-12-10 en")
    reply = coord.last_text
    code = reply.split("One-time code: ")[1].split(" ")[0]
    stored = await table_text(h)
    # Not in the outbox (the sent message lost its text), not anywhere else in the database.
    assert code not in stored
    [row] = await h.rows(
        "SELECT payload FROM outbox WHERE chat_id = ? ORDER BY id DESC", (EN_COORD,)
    )
    assert "text" not in json.loads(row["payload"])
    # A stolen database alone cannot test guesses: the stored value is keyed, not SHA-256.
    assert codes.legacy_hash(code) not in stored
    [hashed] = await h.rows("SELECT code_hash, keyed FROM enrolment_codes")
    assert tuple(hashed) == (codes.code_hash(code, keys.for_conn(h.rt.db.conn)), 1)
    # And the code still works for the patient.
    patient = h.player(604, "en")
    await patient.send(f"/start {code}")
    assert (await h.db_patient("RP-004")).chat_id == 604


def enroll_args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "reissue": None,
        "from_csv": None,
        "json": False,
        "reason": NO_REASON_GIVEN,
    }
    return argparse.Namespace(**{**base, **kw})


async def reissue(h: Harness, subject: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert await cmd_enroll(enroll_args(reissue=subject), h.rt) == 0
    return out.getvalue().split("code:")[1].split()[0]


async def test_reissue_revokes_the_old_code_and_is_audited(harness: Harness) -> None:
    h = harness
    old = await h.enroll("RP-020", lang="en")
    new = await reissue(h, "RP-020")
    assert new != old
    p = h.player(920, "en")
    await p.send(f"/start {old}")
    assert p.last_text == EN("This code has expired. Please ask your study team for a new one.")
    assert (await h.db_patient("RP-020")).chat_id is None
    await p.send(f"/start {new}")
    assert (await h.db_patient("RP-020")).chat_id == 920
    [entry] = await h.rows(
        "SELECT actor, subject, new_value, reason FROM audit WHERE action = 'code_reissue'"
    )
    assert (entry["actor"], entry["subject"]) == ("cli", "RP-020")
    assert entry["reason"] == NO_REASON_GIVEN  # the command line gave none; the entry says so
    assert json.loads(entry["new_value"])["revoked"] == 1
    assert old not in await table_text(h) and new not in await table_text(h)
    # Refusals: a linked subject (unlink first), an unknown one; nothing written.
    before = len(await h.rows("SELECT code_hash FROM enrolment_codes"))
    with pytest.raises(UsageError, match="diarybot subject unlink RP-020"):
        await cmd_enroll(enroll_args(reissue="RP-020"), h.rt)
    with pytest.raises(UsageError, match="no subject 'RP-404'"):
        await cmd_enroll(enroll_args(reissue="RP-404"), h.rt)
    assert len(await h.rows("SELECT code_hash FROM enrolment_codes")) == before


async def test_unlink_detaches_a_hijacked_account_and_a_new_code_relinks(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    thief = await day0_patient(h, lang="en", user_id=501)  # Day 0 prompt at 20:00 received
    prompts = len(thief.messages)
    assert any("Daily diary" in m for m in thief.texts())
    args = argparse.Namespace(subject="RP-001", reason="phone stolen")
    assert await cmd_unlink(args, h.rt) == 0
    assert "Telegram account detached" in capsys.readouterr().out
    patient = await h.db_patient("RP-001")
    assert (patient.chat_id, patient.user_id, patient.status) == (None, None, "invited")
    [entry] = await h.rows("SELECT actor, old_value, reason FROM audit WHERE action = 'unlink'")
    assert entry["actor"] == "cli" and entry["reason"] == "phone stolen"
    assert json.loads(entry["old_value"]) == {"chat_id": 501, "user_id": 501, "status": "active"}
    # The old account is a stranger now: no diary, no prompts.
    await thief.send("/diary")
    assert "enrolment code" in thief.last_text
    await h.advance(days=1)
    assert not any("Daily diary" in m for m in thief.texts()[prompts:])
    # Unlinking again is refused, writes nothing.
    assert await cmd_unlink(args, h.rt) == 2
    assert "not linked to a Telegram account" in capsys.readouterr().err
    # The patient's new phone: a new code links it, the diaries continue.
    code = await reissue(h, "RP-001")
    phone = h.player(777, "en")
    await phone.send(f"/start {code}")
    relinked = await h.db_patient("RP-001")
    assert (relinked.chat_id, relinked.status) == (777, "active")
    assert relinked.injection_date == date(2026, 11, 30)
    assert hashlib.sha256(code.encode()).hexdigest() not in await table_text(h)
