"""Issue 11 §1–2, the sender: fair across chats; parked messages released when Telegram is back.

Real pacing (one message a second per private chat), the real bot and the loopback server.
Assertions are on what was sent and in which order, never on how long it took.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot import messenger
from bot.domain.study import Study
from bot.messenger import Priority
from bot.sender import Pacing
from tests.delivery_support import delivery_harness, outbox, parked, queue
from tests.harness import Harness

FLOODED = 60001
PATIENT = 501
OTHER = 60002
COORDINATOR = 1001


async def test_a_chat_with_a_thousand_queued_replies_blocks_no_other_chat(
    tmp_path: Path, study: Study
) -> None:
    async with delivery_harness(tmp_path, study) as h:  # real pacing: 1/s per private chat
        patient = await h.patient(PATIENT, lang="en")
        async with h.rt.db.transaction() as conn:
            for n in range(1000):
                await messenger.enqueue(conn, h.rt.now(), FLOODED, f"reply {n}")
        h.rt.wake_sender()
        await h.api.wait_until(lambda: len(h.api.messages(FLOODED)) >= 3, timeout=5)
        # Now the flooded chat waits for its pace, with 997 replies queued before anything else.
        await queue(h, OTHER, "Time for today's diary", Priority.PROMPT)
        h.api.send_text(PATIENT, "/help", language_code="en")
        prompt = await h.api.wait_for_message(OTHER, timeout=5)
        await h.api.wait_until(lambda: len(patient.messages) >= 2, timeout=5)
        assert prompt.text == "Time for today's diary"
        assert "symptom diary" in patient.last_text
        # Both went out while the flooded chat was still on its first few replies.
        flooded = h.api.messages(FLOODED)
        assert len(flooded) < 10, len(flooded)
        assert [m.text for m in flooded] == [f"reply {n}" for n in range(len(flooded))]
        order = h.api.state.sent_order
        assert order.index(prompt) < order.index(flooded[-1]) + 5
        queued = await h.rt.db.scalar(
            "SELECT COUNT(*) FROM outbox WHERE chat_id = ? AND status = 'queued'", (FLOODED,)
        )
        assert queued > 980  # still pacing, nothing dropped


async def test_parked_messages_go_out_as_soon_as_telegram_answers_again_urgent_first(
    tmp_path: Path, study: Study
) -> None:
    fast_retries = Pacing(backoff_base=0.01, backoff_max=0.02, outage_failures=4)
    async with delivery_harness(tmp_path, study, pacing=fast_retries) as h:
        h.api.faults.error_5xx_fraction = 1.0  # Telegram is unreachable
        await queue(h, PATIENT, "Time for today's diary", Priority.PROMPT)
        await queue(h, COORDINATOR, "URGENT alert", Priority.URGENT)
        await h.api.wait_until(lambda: h.api.stats["5xx"] >= 10, timeout=10)
        await _until_parked(h, 2)
        assert not h.api.all_messages()
        # Telegram is back; the next message that goes through releases the parked ones at
        # once (the study clock has not moved: they would otherwise wait about two minutes).
        h.api.faults.error_5xx_fraction = 0.0
        await queue(h, OTHER, "a reply", Priority.REPLY)
        await h.settle(timeout=10)
        assert [m.text for m in h.api.all_messages()] == [
            "a reply",
            "URGENT alert",
            "Time for today's diary",
        ]
        assert {r["status"] for r in await outbox(h)} == {"sent"}


async def _until_parked(h: Harness, count: int) -> None:
    deadline = time.monotonic() + 10
    while await parked(h) != count:
        assert time.monotonic() < deadline, "messages were not parked"
        await asyncio.sleep(0.01)
