"""The sender against the loopback server: priorities, edits, retries, 429 scopes, migration."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot import messenger
from bot.domain.study import Study
from bot.localapi import LocalBotApi
from bot.messenger import Priority
from bot.sender import Pacing
from tests.delivery_support import delivery_harness, drain, outbox, parked, queue

PATIENT = 501
COORDINATOR = 1001


async def test_an_urgent_alert_overtakes_a_fan_out(tmp_path, study: Study) -> None:  # type: ignore[no-untyped-def]
    async with delivery_harness(tmp_path, study) as h:
        async with h.rt.db.transaction() as conn:
            for n in range(90):
                await messenger.enqueue(conn, h.rt.now(), 30000 + n, f"prompt {n}")
        h.rt.wake_sender()
        await h.api.wait_until(lambda: len(h.api.state.sent_order) >= 10, timeout=5)
        before = len(h.api.state.sent_order)
        await queue(h, COORDINATOR, "URGENT alert", Priority.URGENT)
        msg = await h.api.wait_for_message(COORDINATOR, timeout=5)
        position = h.api.state.sent_order.index(msg)
        assert position <= before + 3, (position, before)  # not behind the ~80 prompts left
        await h.settle(timeout=10)
        assert len(h.api.state.sent_order) == 91
        assert h.api.stats["429"] == 0


async def test_edit_of_a_message_that_is_gone_is_sent_as_a_new_message(
    tmp_path: Path, study: Study
) -> None:
    async with delivery_harness(tmp_path, study) as h:
        await queue(h, PATIENT, "Question 1", Priority.REPLY)
        await h.settle()
        [first] = h.api.messages(PATIENT)
        h.api.state.delete(PATIENT, first.message_id)  # the patient deleted it
        async with h.rt.db.transaction() as conn:
            await messenger.enqueue_edit(conn, h.rt.now(), PATIENT, first.message_id, "Question 2")
        h.rt.wake_sender()
        await h.settle()
        msgs = h.api.messages(PATIENT)
        assert [m.text for m in msgs] == ["Question 1", "Question 2"]
        [row] = await outbox(h, "kind = 'edit'")
        assert (row["status"], row["message_id"]) == ("sent", msgs[1].message_id)
        assert h.bot.sender.stats["fallback"] == 1


async def test_edit_by_ref_waits_for_its_message_and_no_op_edits_count_as_sent(
    tmp_path: Path, study: Study
) -> None:
    async with delivery_harness(tmp_path, study) as h:
        async with h.rt.db.transaction() as conn:
            # the edit is more urgent than the prompt it edits, and is queued at the same time
            await messenger.enqueue(
                conn, h.rt.now(), PATIENT, "Prompt", priority=Priority.PROMPT, ref="p:1"
            )
            await messenger.enqueue_edit_ref(conn, h.rt.now(), PATIENT, "p:1", "Prompt (done)")
        h.rt.wake_sender()
        await h.settle()
        [msg] = h.api.messages(PATIENT)
        assert (msg.text, msg.edits) == ("Prompt (done)", 1)
        # the same edit again (e.g. re-sent after a crash): Telegram says "not modified"
        async with h.rt.db.transaction() as conn:
            await messenger.enqueue_edit(conn, h.rt.now(), PATIENT, msg.message_id, "Prompt (done)")
        h.rt.wake_sender()
        await h.settle()
        rows = await outbox(h)
        assert [r["status"] for r in rows] == ["sent", "sent", "sent"]
        assert len(h.api.messages(PATIENT)) == 1 and h.bot.sender.stats["fallback"] == 0


async def test_failures_are_retried_with_backoff_then_parked_never_dropped(
    tmp_path: Path, study: Study
) -> None:
    pacing = Pacing(backoff_base=0.01, quick_attempts=4, park_seconds=120)
    async with delivery_harness(tmp_path, study, pacing=pacing) as h:
        h.api.faults.error_5xx_fraction = 1.0
        await queue(h, PATIENT, "Your diary", Priority.PROMPT)
        await h.api.wait_until(lambda: h.api.stats["5xx"] >= 4, timeout=5)
        await h.settle()  # returns: the row is parked (due later), not lost
        [row] = await outbox(h)
        assert (row["status"], row["attempts"], row["last_error"]) == (
            "queued",
            4,
            "NetworkError",
        )
        assert await parked(h) == 1
        assert h.api.stats["5xx"] == 4  # no hammering while parked
        h.api.faults.error_5xx_fraction = 0.0
        await h.advance(minutes=1)
        assert h.api.messages(PATIENT) == []  # parked for about two minutes
        await drain(h)
        [msg] = h.api.messages(PATIENT)
        assert msg.text == "Your diary"
        [row] = await outbox(h)
        assert (row["status"], row["message_id"]) == ("sent", msg.message_id)


async def test_retry_after_for_one_chat_does_not_stop_the_others(tmp_path, study: Study) -> None:  # type: ignore[no-untyped-def]
    async with delivery_harness(tmp_path, study) as h:
        h.api.faults.per_chat_per_second = 1  # stricter than Telegram: no burst at all
        for n in range(3):  # replies to the patient's own taps may burst: the 2nd meets a 429
            await queue(h, PATIENT, f"reply {n}", Priority.REPLY)
        await h.api.wait_until(lambda: h.api.stats["429"] >= 1, timeout=3)
        await queue(h, PATIENT + 1, "someone else", Priority.PROMPT)
        other = await h.api.wait_for_message(PATIENT + 1, timeout=0.5)  # not paused
        assert other.text == "someone else"
        await h.settle(timeout=10)
        assert [m.text for m in h.api.messages(PATIENT)] == ["reply 0", "reply 1", "reply 2"]
        stats = h.bot.sender.stats
        assert stats["retry_after"] >= 1 and stats["retry_after_global"] == 0


async def test_a_bot_wide_429_pauses_every_chat(tmp_path, study: Study) -> None:  # type: ignore[no-untyped-def]
    async with delivery_harness(tmp_path, study) as h:
        h.api.faults.rate_limit_per_second = 2  # far below what we pace for
        h.api.faults.retry_after_seconds = 1
        async with h.rt.db.transaction() as conn:
            for n in range(8):
                await messenger.enqueue(conn, h.rt.now(), 40000 + n, f"prompt {n}")
        h.rt.wake_sender()
        await h.settle(timeout=15)
        assert len(h.api.state.sent_order) == 8
        stats = h.bot.sender.stats
        assert stats["retry_after_global"] >= 1
        # After a bot-wide 429 everything waits, so there are fewer 429s than messages: sending
        # on blindly at 2/s would draw a 429 for most of them, again on every retry. (How many
        # requests were already in flight when the first 429 came depends on the machine's
        # speed, so the bound is the message count, not a smaller number.)
        assert h.api.stats["429"] < 8, h.api.stats


class MigratingApi(LocalBotApi):
    """A server where group OLD has become supergroup NEW (Telegram's 400 with migrate_to)."""

    OLD, NEW = -4001, -1004001

    async def _apply_faults(
        self, request: web.Request, method: str, chat_id: int | None
    ) -> web.StreamResponse | None:
        if chat_id == self.OLD and method == "sendMessage":
            self.stats["migrated"] += 1
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: group chat was upgraded to a supergroup chat",
                    "parameters": {"migrate_to_chat_id": self.NEW},
                },
                status=400,
            )
        return await super()._apply_faults(request, method, chat_id)


async def test_group_upgraded_to_supergroup_messages_follow(tmp_path, study: Study) -> None:  # type: ignore[no-untyped-def]
    async with delivery_harness(tmp_path, study, api=MigratingApi()) as h:
        async with h.rt.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('staff_group', ?)", (str(MigratingApi.OLD),)
            )
        await queue(h, MigratingApi.OLD, "alert 1", Priority.URGENT)
        await queue(h, MigratingApi.OLD, "alert 2", Priority.URGENT)
        await h.settle()
        assert [m.text for m in h.api.messages(MigratingApi.NEW)] == ["alert 1", "alert 2"]
        assert h.api.stats["migrated"] == 1
        group = await h.rt.db.scalar("SELECT value FROM meta WHERE key = 'staff_group'")
        assert group == str(MigratingApi.NEW)
        [entry] = await h.rows("SELECT * FROM audit WHERE action = 'staff_group'")
        assert (entry["old_value"], entry["new_value"]) == (
            str(MigratingApi.OLD),
            str(MigratingApi.NEW),
        )


async def test_bad_request_fails_the_row_and_the_queue_goes_on(tmp_path, study: Study) -> None:  # type: ignore[no-untyped-def]
    async with delivery_harness(tmp_path, study) as h:
        await queue(h, PATIENT, "x" * 5000, Priority.REPLY)  # too long: Telegram refuses it
        await queue(h, PATIENT, "next", Priority.REPLY)
        await h.settle()
        rows = await outbox(h)
        assert [r["status"] for r in rows] == ["failed", "sent"]
        assert "too long" in rows[0]["last_error"]
        assert [m.text for m in h.api.messages(PATIENT)] == ["next"]
