"""The demo study: seeded through the running bot, then a day of time travel.

One seeded sandbox is shared by the tests of this module (seeding plays ~20 diaries through the
chat, a few seconds); the tests run in order and the second moves its clock on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from bot.domain.study import Study
from bot.sandbox import chatview, demo, queries
from bot.sandbox.world import Sandbox
from storage import audit
from tests.sandbox_support import find, started, texts

pytestmark = pytest.mark.asyncio(loop_scope="module")
TODAY = date(2026, 11, 30)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory, study: Study) -> AsyncIterator[Sandbox]:
    path = Path(tmp_path_factory.mktemp("seed")) / "sandbox.sqlite3"
    async for sb in started(path, study, demo.seed_start(study, TODAY)):
        await demo.seed(sb, TODAY)
        yield sb


def _at(sb: Sandbox, chat_id: int, message_id: int) -> str:
    chat = chatview.chat_messages(sb.api, chat_id, sb.study.timezone)
    return next(m["at"] for m in chat if m["id"] == message_id)


async def test_the_seeded_story(seeded: Sandbox) -> None:
    sb = seeded
    db = sb.bot.rt.db
    now_local = sb.now.astimezone(ZoneInfo(sb.study.timezone))
    assert now_local.strftime("%Y-%m-%d %H:%M") == "2026-11-30 19:30"
    days = {p.subject: (p.study_day, p.status) for p in await queries.patients(db, sb.now)}
    assert days == {
        "RP-001": (2, "active"),
        "RP-002": (30, "active"),
        "RP-003": (99, "active"),
        "RP-004": (-3, "active"),
        "RP-W01": (-5, "active"),  # the web diary's patient
    }
    assert [(s.role, s.lang) for s in await queries.staff(db)] == [
        ("coordinator", "zh_Hans"),
        ("coordinator", "en"),
        ("investigator", "zh_Hans"),
    ]
    assert await queries.staff_group(db) == demo.STAFF_GROUP

    # The history: completed and missed diaries, exactly as the story says.
    rows = await db.fetchall(
        "SELECT p.subject, o.status, COUNT(*) AS n FROM occurrences o"
        " JOIN patients p ON p.id = o.patient_id WHERE o.status IN ('completed', 'missed')"
        " GROUP BY 1, 2"
    )
    counts = {(r["subject"], r["status"]): r["n"] for r in rows}
    assert counts == {
        ("RP-001", "completed"): 8,
        ("RP-001", "missed"): 1,
        ("RP-002", "completed"): 6,
        ("RP-002", "missed"): 3,
        ("RP-003", "completed"): 2,
        ("RP-003", "missed"): 1,  # the last daily diary, the day the team enrolled them
        ("RP-004", "completed"): 5,
    }
    # Answers were given through the chat, one audited tap at a time.
    taps = await db.scalar("SELECT COUNT(*) FROM audit WHERE action = 'answer'")
    assert taps >= 150
    assert (await audit.verify(db.conn)).ok

    # One open alert: RP-003's report of dripping blood, minutes before now.
    alerts = await db.fetchall(
        "SELECT p.subject, a.rule, a.level FROM alerts a JOIN patients p ON p.id = a.patient_id"
        " WHERE a.status = 'open'"
    )
    assert [tuple(a) for a in alerts] == [("RP-003", "BLEED_HEAVY", "urgent")]
    assert "120" in texts(sb, 503)[-1]  # the patient got the safety text
    for coordinator in (1001, 1002):
        card = find(sb, coordinator, "RP-003")
        assert [d.split(":")[:2] for _, d in card.flat_buttons if d] == [["al", "ack"]]
        assert _at(sb, coordinator, card.message_id) == "2026-11-30 19:25"
    # RP-002 chose the language at /start; every chat begins with the code being sent.
    for user in (501, 502, 503, 504):
        first = chatview.chat_messages(sb.api, user, sb.study.timezone)[0]
        assert first["from"] == "user" and first["text"].startswith("/start ")
    assert "RP-002" in find(sb, 502, "Welcome").text  # type: ignore[operator]
    # The web patient got their personal link by SMS when they were enrolled this morning.
    tz = ZoneInfo(sb.study.timezone)
    [link] = sb.sms.to(demo.WEB_PATIENT.phone)
    assert link.purpose == "web_link" and link.at.astimezone(tz).strftime("%H:%M") == "10:00"
    assert sb.web is not None and f"http://{sb.web.bound}/p/" in link.text


async def test_a_day_of_time_travel(seeded: Sandbox) -> None:
    sb = seeded
    db = sb.bot.rt.db
    before = {u: len(sb.api.messages(u)) for u in (501, 502, 503, 504, 1002, 1003)}
    steps = await sb.advance(timedelta(days=1))
    assert steps > 4
    # Each patient is prompted at their own time, and reminded three hours later.
    expected = {
        501: ("2026-11-30 20:00", "2026-11-30 23:00"),
        502: ("2026-11-30 20:00", "2026-11-30 23:00"),
        504: ("2026-12-01 08:00", "2026-12-01 11:00"),
    }
    for user, (prompt_at, reminder_at) in expected.items():
        new = sb.api.messages(user)[before[user] :]
        starts = [
            _at(sb, user, m.message_id)
            for m in new
            if any(d is not None and d.startswith("d:s:") for _, d in m.flat_buttons)
        ]
        assert starts == [prompt_at, reminder_at], texts(sb, user)[before[user] :]
    # RP-002 missed a third diary in a row: the team is told (compliance alert).
    missed = await db.fetchall(
        "SELECT a.level FROM alerts a JOIN patients p ON p.id = a.patient_id"
        " WHERE p.subject = 'RP-002' AND a.status = 'open'"
    )
    assert [m["level"] for m in missed] == ["compliance"]
    # The unacknowledged urgent alert was re-sent and, after the first re-send, reached the
    # investigator too.
    assert any("RP-003" in (m.text or "") for m in sb.api.messages(1003)[before[1003] :])
    # At 09:00 study time each coordinator gets the daily summary, once.
    summaries = [
        m
        for m in sb.api.messages(1002)[before[1002] :]
        if "Daily summary, 1 December 2026" in (m.text or "")
    ]
    assert len(summaries) == 1, texts(sb, 1002)[before[1002] :]
    assert _at(sb, 1002, summaries[0].message_id) == "2026-12-01 09:00"
    # The web patient, on the same clock: the prompt and the reminder by SMS.
    tz = ZoneInfo(sb.study.timezone)
    got = [
        (m.purpose, m.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"))
        for m in sb.sms.to(demo.WEB_PATIENT.phone)[1:]
    ]
    assert got == [("prompt", "2026-11-30 20:00"), ("reminder", "2026-11-30 23:00")]
