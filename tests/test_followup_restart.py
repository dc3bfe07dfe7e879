"""Restarts and downtime, end to end: the bot is stopped and a new DiaryBot is built on the same
database file. Windows that closed meanwhile become missed without a prompt; an open one is
prompted once; restarting again and again never repeats a prompt or a reminder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.followup_support import restart
from tests.harness import Harness

PROMPT = "Time for today's diary"
REMINDER = "gentle reminder"


async def counts(h: Harness, subject: str = "RP-001") -> dict[str, tuple[int, int]]:
    """key -> (prompts queued, reminders queued) for every occurrence that got any."""
    found = await h.rows(
        "SELECT o.key, SUM(x.ref = 'prompted:' || o.id), SUM(x.ref = 'reminded:' || o.id)"
        " FROM occurrences o JOIN patients p ON p.id = o.patient_id JOIN outbox x"
        " ON x.ref IN ('prompted:' || o.id, 'reminded:' || o.id) WHERE p.subject = ?"
        " GROUP BY o.key",
        (subject,),
    )
    return {r[0]: (r[1], r[2]) for r in found}


async def test_restart_inside_an_open_window_prompts_and_reminds_once(harness: Harness) -> None:
    h = harness
    p = await h.patient(501, "RP-001", lang="en")
    await h.advance(hours=1)  # 20:00 Shanghai: Day -1 prompt
    assert sum(PROMPT in t for t in p.texts()) == 1
    h2 = await restart(h, h.clock.now() + timedelta(minutes=30))
    try:
        assert await counts(h2) == {"baseline:-1": (1, 0)}
        await h2.advance(hours=2, minutes=30)  # 23:00: the reminder
        h3 = await restart(h2, h2.clock.now() + timedelta(minutes=30))
        h2 = h3
        assert await counts(h2) == {"baseline:-1": (1, 1)}
        texts = h2.api.messages(501)
        assert sum(PROMPT in (m.text or "") for m in texts) == 1
        assert sum(REMINDER in (m.text or "") for m in texts) == 1
    finally:
        await h2.bot.stop()


async def test_two_days_down_then_five_restarts(harness: Harness) -> None:
    h = harness
    await h.patient(501, "RP-001", lang="en")  # 19:00 on Day -1 (30 Nov), before its prompt
    # Down from 19:00 on 30 Nov to 21:00 on 2 Dec (Shanghai): Day -1 and Day 0 open and close.
    back = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
    h2 = await restart(h, back)
    try:
        status = {
            r[0]: r[1]
            for r in await h2.rows(
                "SELECT key, status FROM occurrences WHERE key IN"
                " ('baseline:-1', 'daily:0', 'daily:1')"
            )
        }
        assert status == {"baseline:-1": "missed", "daily:0": "missed", "daily:1": "prompted"}
        assert await counts(h2) == {"daily:1": (1, 0)}  # no prompt for the closed days
        missed = await h2.rows(
            "SELECT entity, old_value FROM audit WHERE action = 'diary_missed' ORDER BY id"
        )
        assert [tuple(r) for r in missed] == [
            ("baseline:-1", "scheduled"),
            ("daily:0", "scheduled"),
        ]

        for _ in range(5):  # stop and start five times inside the open window
            h2 = await restart(h2, h2.clock.now() + timedelta(minutes=10))
        assert await counts(h2) == {"daily:1": (1, 0)}
        await h2.set_time(datetime(2026, 12, 2, 15, 0, tzinfo=UTC))  # 23:00: reminder
        h2 = await restart(h2, h2.clock.now() + timedelta(minutes=5))
        await h2.set_time(datetime(2026, 12, 3, 12, 30, tzinfo=UTC))  # 20:30 on Day 2
        assert await counts(h2) == {"daily:1": (1, 1), "daily:2": (1, 0)}
        texts = [m.text or "" for m in h2.api.messages(501)]
        assert sum(PROMPT in t for t in texts) == 2
        assert sum(REMINDER in t for t in texts) == 1
    finally:
        await h2.bot.stop()
