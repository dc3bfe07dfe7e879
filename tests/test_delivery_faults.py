"""Delivery under a misbehaving Telegram: 5xx, dropped connections, flood limits, blocks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from bot import messenger
from bot.cli import cmd_staff
from bot.domain.study import Study
from bot.localapi import Faults, LocalBotApi
from bot.messenger import Priority
from bot.sender import Pacing
from tests.delivery_support import delivery_harness, drain, enrol_linked, outbox, queue
from tests.diary_helpers import QUIET
from tests.escalation_support import alert_messages
from tests.harness import Harness, fill_diary

COORDINATOR = 1002
GROUP = -100500


async def _team(h: Harness) -> None:
    for kwargs in (
        {"staff_command": "add", "telegram_id": COORDINATOR, "role": "coordinator",
         "name": "Anna Smith", "lang": "en"},
        {"staff_command": "group", "chat_id": GROUP},
    ):  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            await cmd_staff(argparse.Namespace(**kwargs), h.rt)


def _prompts(h: Harness, chat_id: int) -> list[str]:
    return [
        m.text or ""
        for m in h.api.messages(chat_id)
        if any((d or "").startswith("d:s:") for _, d in m.flat_buttons)
        or "diary is still open" in (m.text or "")
    ]


async def test_under_5xx_and_drops_every_prompt_and_alert_arrives_no_answer_twice(
    tmp_path: Path, study: Study
) -> None:
    # About faults, not pacing (tests/test_delivery_pacing.py): shorter backoff, and a patient
    # may tap faster than once a second.
    pacing = Pacing(private_burst=50, backoff_base=0.1)
    async with delivery_harness(tmp_path, study, api=LocalBotApi(seed=11), pacing=pacing) as h:
        await _team(h)
        users = await enrol_linked(h, 40)
        h.api.faults.error_5xx_fraction = 0.20
        h.api.faults.drop_fraction = 0.05
        await h.advance(hours=1)  # 20:00 Shanghai: 40 baseline prompts fan out
        await drain(h)
        assert all(len(_prompts(h, u)) == 1 for u in users), Counter(
            len(_prompts(h, u)) for u in users
        )
        # four patients fill in their diary through the faults; one reports dripping blood
        diaries = {users[0]: {"BLEED": "3", "BLEED_FAINT": "N"}, users[1]: {}, users[2]: {}}
        diaries[users[3]] = {"PAIN": "9"}
        await asyncio.gather(
            *(fill_diary(h.player(u, "en"), {**QUIET, **extra}) for u, extra in diaries.items())
        )
        await drain(h)
        assert h.api.stats["5xx"] > 20 and h.api.stats["drop"] > 3, h.api.stats

        completed = await h.rows(
            "SELECT p.user_id FROM occurrences o JOIN patients p ON p.id = o.patient_id"
            " WHERE o.status = 'completed' ORDER BY p.user_id"
        )
        assert [r["user_id"] for r in completed] == sorted(diaries)
        audits = await h.rows(
            "SELECT action, subject, entity, COUNT(*) AS n FROM audit"
            " WHERE action LIKE 'answer%' GROUP BY action, subject, entity"
        )
        assert {r["action"] for r in audits} == {"answer"}  # never changed, never twice
        assert all(r["n"] == 1 for r in audits)
        stored = await h.rows("SELECT COUNT(*) AS n FROM answers WHERE submitted_at IS NOT NULL")
        assert stored[0]["n"] == len(audits)

        alerts = await h.rows("SELECT rule, level FROM alerts ORDER BY rule")
        assert [(a["rule"], a["level"]) for a in alerts] == [
            ("BLEED_HEAVY", "urgent"),
            ("PAIN_SEVERE", "urgent"),
        ]
        assert len(alert_messages(h, COORDINATOR)) >= 2
        assert len(alert_messages(h, GROUP)) >= 2
        assert not await outbox(h, "status != 'sent'")  # nothing failed, nothing left


async def test_under_the_enforced_flood_limit_our_pacing_provokes_no_429(
    tmp_path: Path, study: Study
) -> None:
    api = LocalBotApi(seed=3)
    api.faults = Faults(rate_limit_per_second=30, per_chat_per_second=1, group_per_minute=20)
    async with delivery_harness(tmp_path, study, api=api) as h:
        await _team(h)
        users = await enrol_linked(h, 60)
        await h.advance(hours=1)  # the fan-out: 60 prompts …
        async with h.rt.db.transaction() as conn:  # … while more goes to the same chats
            now = h.rt.now()
            for user in users[:20]:
                await messenger.enqueue(conn, now, user, "a second note", priority=Priority.PROMPT)
            for n in range(4):
                await messenger.enqueue(conn, now, GROUP, f"digest {n}", priority=Priority.DIGEST)
            await messenger.enqueue(conn, now, GROUP, "urgent", priority=Priority.URGENT)
            await messenger.enqueue(conn, now, COORDINATOR, "urgent", priority=Priority.URGENT)
            await messenger.enqueue(conn, now, COORDINATOR, "urgent 2", priority=Priority.URGENT)
        h.rt.wake_sender()
        await h.settle(timeout=30)
        assert h.api.stats["429"] == 0, h.api.stats
        assert all(len(_prompts(h, u)) == 1 for u in users)
        assert all(len(h.api.messages(u)) == 2 for u in users[:20])
        group = [m.text or "" for m in h.api.messages(GROUP)]
        assert group[0] == "urgent" and sorted(group[1:]) == [f"digest {n}" for n in range(4)]
        assert [m.text for m in h.api.messages(COORDINATOR)] == ["urgent", "urgent 2"]
        assert h.api.stats["sent"] == 60 + 20 + 5 + 2


async def test_blocked_patient_is_unreachable_until_they_write_again(
    tmp_path: Path, study: Study
) -> None:
    async with delivery_harness(tmp_path, study) as h:
        called: list[tuple[str, int, datetime]] = []

        async def hook_blocked(conn: object, chat_id: int, now: datetime) -> None:
            called.append(("blocked", chat_id, now))

        async def hook_back(conn: object, chat_id: int, now: datetime) -> None:
            called.append(("back", chat_id, now))

        unreachable_hooks = h.bot.hooks.on_unreachable
        reachable_hooks = h.bot.hooks.on_reachable
        assert isinstance(unreachable_hooks, list) and isinstance(reachable_hooks, list)
        unreachable_hooks.append(hook_blocked)
        reachable_hooks.append(hook_back)
        [user, other] = await enrol_linked(h, 2)
        h.api.block(user)
        await h.advance(hours=1)  # the baseline prompt meets 403
        assert _prompts(h, other) and not h.api.messages(user)
        patient = await h.rows(
            "SELECT subject, unreachable FROM patients WHERE user_id = ?", (user,)
        )
        assert patient[0]["unreachable"] == 1
        [row] = await outbox(h, "chat_id = ?", (user,))
        assert row["status"] == "failed" and row["last_error"].startswith("Forbidden")
        assert [c[:2] for c in called] == [("blocked", user)]

        await h.advance(hours=24)  # prompts stop: nothing more is even tried
        assert len(await outbox(h, "chat_id = ?", (user,))) == 1
        assert h.api.stats["403"] == 1

        h.api.unblock(user)
        await h.advance(hours=1)  # 21:00 on Day 0: the window is open, the patient is silent
        assert len(await outbox(h, "chat_id = ?", (user,))) == 1
        p = h.player(user, "en")
        await p.send("hello")  # writing again lifts it …
        patient = await h.rows("SELECT unreachable FROM patients WHERE user_id = ?", (user,))
        assert patient[0]["unreachable"] == 0
        assert [c[:2] for c in called] == [("blocked", user), ("back", user)]
        entries = await h.rows(
            "SELECT action, actor, old_value, new_value FROM audit"
            " WHERE action IN ('unreachable', 'reachable') ORDER BY id"
        )
        assert [(e["action"], e["new_value"]) for e in entries] == [
            ("unreachable", "blocked"),
            ("reachable", "reachable"),
        ]
        # … the open Day 0 diary is prompted, and the message itself was handled as usual
        texts = p.texts()
        assert len(_prompts(h, user)) == 1, texts
        assert any("/diary" in t for t in texts), texts


async def test_a_staff_chat_that_refuses_is_logged_as_an_error(
    tmp_path: Path, study: Study, caplog: pytest.LogCaptureFixture
) -> None:
    """A coordinator who blocked the bot is not a patient: nothing about any patient changes,
    and the operator is told in the log, each time, that alerts there are not delivered."""
    async with delivery_harness(tmp_path, study) as h:
        await h.rt.db.execute(
            "INSERT INTO staff (telegram_id, role, name, lang, active, created_at)"
            " VALUES (9100, 'coordinator', 'Staff member', 'en', 1, '2026-01-01T00:00:00.000000Z')"
        )
        [user] = await enrol_linked(h, 1)
        h.api.block(9100)
        with caplog.at_level(logging.ERROR, logger="bot.app"):
            await queue(h, 9100, "URGENT alert", Priority.URGENT)
            await h.settle()
        [row] = await outbox(h, "chat_id = 9100")
        assert row["status"] == "failed" and row["last_error"].startswith("Forbidden")
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("the coordinator 9100" in e and "not delivered" in e for e in errors), errors
        patients = await h.rows("SELECT unreachable FROM patients WHERE user_id = ?", (user,))
        assert patients[0]["unreachable"] == 0
        assert not await h.rows("SELECT 1 FROM audit WHERE action = 'unreachable'")


async def test_a_send_that_times_out_is_retried_until_it_arrives(
    tmp_path: Path, study: Study
) -> None:
    """Telegram answers too slowly (the client's read timeout is shorter): the send counts as a
    failed attempt, stays queued and goes out once Telegram is fast again. A timed-out request
    may still have been carried out, so the message can arrive twice (docs/delivery.md, the
    duplicate window, case 2) — but never zero times."""
    async with delivery_harness(tmp_path, study, read_timeout=0.5) as h:
        h.api.faults.apply_to = {"sendMessage"}
        h.api.faults.slow_seconds = 1.5
        await queue(h, COORDINATOR, "URGENT alert", Priority.URGENT)
        for _ in range(600):  # until the failed attempt is on record (polling for work)
            [row] = await outbox(h, "chat_id = ?", (COORDINATOR,))
            if row["attempts"] >= 1:
                break
            await asyncio.sleep(0.05)
        assert row["status"] == "queued" and row["attempts"] >= 1
        assert row["last_error"] == "TimedOut"
        h.api.faults.slow_seconds = 0.0
        await drain(h)
        [row] = await outbox(h, "chat_id = ?", (COORDINATOR,))
        assert row["status"] == "sent" and row["attempts"] >= 2
        copies = [m for m in h.api.messages(COORDINATOR) if m.text == "URGENT alert"]
        assert 1 <= len(copies) <= row["attempts"]
        assert h.api.stats["slow"] >= 1
