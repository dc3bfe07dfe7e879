"""The sandbox world: the real bot against the loopback API, moved by the sandbox's clock."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from bot.domain.study import Study
from bot.sandbox import chatview, queries
from bot.sandbox.player import fill_diary
from bot.sandbox.world import Sandbox, SandboxError
from bot.services.enrolment import EnrolError
from storage import repo
from tests.sandbox_support import T0, find, started, texts

URGENT: dict[str, str] = {
    "BLEED": "3",
    "BLEED_FAINT": "N",
    "URGENCY": "1",
    "LEAK": "0",
    "PAIN": "2",
    "BM": "3",
    "TENESMUS": "0",
    "FEVER": "N",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}


@pytest.fixture
async def sb(tmp_path: Path, study: Study) -> AsyncIterator[Sandbox]:
    async for s in started(tmp_path / "sandbox.sqlite3", study):
        yield s


async def _patient(sb: Sandbox, subject: str = "RP-201", lang: str = "en") -> int:
    invite = await sb.enroll(subject, date(2026, 12, 1), lang, time(20, 0))
    await sb.send_text(invite.user_id, f"/start {invite.code}")
    return invite.user_id


async def test_enrol_prompt_and_reminder_each_at_its_own_time(sb: Sandbox) -> None:
    user = await _patient(sb)
    assert "RP-201" in texts(sb, user)[-1]
    due = await sb.to_next_prompt()
    assert due is not None and (due.kind, due.subject) == ("prompt", "RP-201")
    assert sb.now == T0 + timedelta(hours=1)  # 20:00 in Shanghai
    prompt = find(sb, user, "Time for today's diary")
    steps = await sb.advance(timedelta(hours=5))
    reminder = find(sb, user, "A gentle reminder")
    assert steps >= 2  # stopped at 23:00 for the reminder, then went on to 01:00
    chat = chatview.chat_messages(sb.api, user, sb.study.timezone)
    stamps = {m["id"]: m["at"] for m in chat}
    # Bubbles carry the study's time, each message the moment it belongs to.
    assert stamps[prompt.message_id] == "2026-11-30 20:00"
    assert stamps[reminder.message_id] == "2026-11-30 23:00"
    assert sb.now == T0 + timedelta(hours=6)
    # The person's own message is in the chat too, before the bot's answer.
    assert [m["from"] for m in chat][:2] == ["user", "bot"]


async def test_urgent_answer_reaches_coordinator_who_acknowledges_and_triages(sb: Sandbox) -> None:
    await sb.add_staff(1002, "coordinator", "Anna Smith", "en")
    user = await _patient(sb)
    await sb.to_next_prompt()
    await fill_diary(sb, user, URGENT)
    assert "emergency" in texts(sb, user)[-1]  # the study's safety text
    card = find(sb, 1002, "RP-201")
    assert "URGENT" in (card.text or "")
    await sb.press(1002, card.message_id, card.button_data("Acknowledge"))
    card = find(sb, 1002, "RP-201")
    await sb.press(1002, card.message_id, card.button_data("Not an AE"))
    row = await sb.bot.rt.db.fetchone(
        "SELECT a.status, a.triage, a.acked_by FROM alerts a JOIN patients p"
        " ON p.id = a.patient_id WHERE p.subject = 'RP-201'"
    )
    assert row is not None
    assert (row["status"], row["triage"], row["acked_by"]) == ("closed", "not_ae", 1002)


async def test_time_only_moves_forward(sb: Sandbox) -> None:
    with pytest.raises(SandboxError, match="forward"):
        await sb.travel_to(sb.now - timedelta(hours=1))
    assert sb.now == T0
    assert await queries.next_prompt(sb.bot.rt.db, sb.now) is None  # nobody enrolled yet
    assert await sb.to_next_prompt() is None
    assert sb.now == T0


async def test_bad_enrolment_is_refused_and_writes_nothing(sb: Sandbox) -> None:
    with pytest.raises(EnrolError, match="subject"):
        await sb.enroll("RP 1; DROP", date(2026, 12, 1), "en", time(20, 0))
    assert await sb.bot.rt.db.scalar("SELECT COUNT(*) FROM patients") == 0
    assert sb.invites == {}


async def test_language_switches_go_through_the_services(sb: Sandbox) -> None:
    user = await _patient(sb, lang="en")
    await sb.set_patient_language(user, "zh_Hans")
    patient = await repo.patient_by_user(sb.bot.rt.db.conn, user)
    assert patient is not None and patient.lang == "zh_Hans"
    assert sb.clients[user] == "zh-hans"
    await sb.send_text(user, "/help")
    assert "研究" in texts(sb, user)[-1]  # the bot now answers in Chinese

    await sb.add_staff(1001, "coordinator", "Li Wei", "zh_Hans")
    await sb.set_staff_language(1001, "en")
    assert await sb.bot.rt.db.scalar("SELECT lang FROM staff WHERE telegram_id = 1001") == "en"
    actions = await sb.bot.rt.db.fetchall("SELECT action FROM audit ORDER BY id")
    assert {"set_language", "staff_language"} <= {a["action"] for a in actions}
    with pytest.raises(SandboxError):
        await sb.set_staff_language(4242, "en")
    with pytest.raises(SandboxError):
        await sb.set_patient_language(4242, "en")


async def test_a_foreign_database_is_never_overwritten(tmp_path: Path, study: Study) -> None:
    path = tmp_path / "study.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE precious (x)")
        conn.execute("INSERT INTO precious VALUES (1)")
    sb = Sandbox(path, study, T0)
    with pytest.raises(SandboxError, match="not a sandbox database"):
        await sb.start()
    await sb.stop()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT x FROM precious").fetchall() == [(1,)]


async def test_a_sandbox_database_starts_fresh(tmp_path: Path, study: Study) -> None:
    path = tmp_path / "sandbox.sqlite3"
    async for sb in started(path, study):
        await sb.enroll("RP-201", date(2026, 12, 1), "en", time(20, 0))
    async for sb in started(path, study):
        assert await sb.bot.rt.db.scalar("SELECT COUNT(*) FROM patients") == 0
