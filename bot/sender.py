"""Drains the outbox: priorities first, Telegram's flood limits respected, nothing dropped.

Pacing (Telegram's guidance): about 30 messages a second overall, about one a second per private
chat (a short burst is allowed, so a patient tapping through a diary never waits), 20 a minute per
group. `RetryAfter` delays only the chat it concerns. Network errors, timeouts and 5xx are
retried with exponential backoff and jitter; the row stays queued, so a long outage only delays.
Retry delays use real (monotonic) time: they are about Telegram, not about study time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.clock import Clock, iso
from bot.messenger import Outgoing, row_to_outgoing
from storage.db import Database

log = logging.getLogger(__name__)

OnForbidden = Callable[[int], Awaitable[None]]


@dataclass
class Pacing:
    overall_per_second: float = 30.0
    private_interval: float = 1.0  # seconds between messages to one private chat …
    private_burst: int = 3  # … after a burst of this many
    group_interval: float = 3.0  # 20 a minute
    max_in_flight: int = 16
    max_backoff: float = 60.0


@dataclass
class _ChatState:
    next_allowed: float = 0.0
    recent: deque[float] = field(default_factory=deque)
    busy: bool = False


def markup(buttons: list[list[list[str]]] | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    rows = []
    for row in buttons:
        out = []
        for label, data in row:
            if data.startswith("url:"):
                out.append(InlineKeyboardButton(label, url=data[4:]))
            else:
                out.append(InlineKeyboardButton(label, callback_data=data))
        rows.append(out)
    return InlineKeyboardMarkup(rows)


class Sender:
    def __init__(
        self,
        db: Database,
        bot: Bot,
        clock: Clock,
        *,
        pacing: Pacing | None = None,
        on_forbidden: OnForbidden | None = None,
        seed: int | None = None,
    ) -> None:
        self.db = db
        self.bot = bot
        self.clock = clock
        self.pacing = pacing or Pacing()
        self.on_forbidden = on_forbidden
        self._wake = asyncio.Event()
        self._chats: dict[int, _ChatState] = {}
        self._sent_times: deque[float] = deque()
        self._in_flight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._random = random.Random(seed)
        self.stats: dict[str, int] = {"sent": 0, "retry_after": 0, "errors": 0, "forbidden": 0}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="outbox-sender")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        while True:
            try:
                delay = await self._dispatch()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the sender die; the rows stay queued
                log.exception("outbox sender iteration failed")
                delay = 1.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _dispatch(self) -> float:
        """Start every send that pacing allows now; return how long to sleep at most."""
        async with self.db.transaction() as conn:  # lock: never read a half-done transaction
            async with conn.execute(
                "SELECT * FROM outbox WHERE status = 'queued' ORDER BY priority, id LIMIT 500"
            ) as cur:
                rows = [row_to_outgoing(r) for r in await cur.fetchall()]
        if not rows:
            return 30.0
        now = time.monotonic()
        blocked: set[int] = set()
        wait = 30.0
        for msg in rows:
            if msg.id in self._in_flight or msg.chat_id in blocked:
                blocked.add(msg.chat_id)
                continue
            if len(self._in_flight) >= self.pacing.max_in_flight:
                return 0.05
            chat = self._chats.setdefault(msg.chat_id, _ChatState())
            ready_at = max(chat.next_allowed, self._chat_ready(msg, chat, now))
            if chat.busy or ready_at > now:
                blocked.add(msg.chat_id)
                if not chat.busy:
                    wait = min(wait, ready_at - now)
                continue
            global_at = self._global_ready(now)
            if global_at > now:
                return max(0.001, min(wait, global_at - now))
            blocked.add(msg.chat_id)  # keep per-chat order: one at a time
            self._note_send(msg, chat, now)
            self._in_flight.add(msg.id)
            chat.busy = True
            task = asyncio.create_task(self._deliver(msg, chat))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return max(0.001, wait)

    def _chat_ready(self, msg: Outgoing, chat: _ChatState, now: float) -> float:
        p = self.pacing
        if msg.chat_id < 0:
            return chat.recent[-1] + p.group_interval if chat.recent else now
        while chat.recent and chat.recent[0] < now - p.private_interval * p.private_burst:
            chat.recent.popleft()
        if len(chat.recent) < p.private_burst:
            return now
        return chat.recent[-p.private_burst] + p.private_interval * p.private_burst

    def _global_ready(self, now: float) -> float:
        while self._sent_times and self._sent_times[0] <= now - 1.0:
            self._sent_times.popleft()
        if len(self._sent_times) < self.pacing.overall_per_second:
            return now
        return self._sent_times[0] + 1.0

    def _note_send(self, msg: Outgoing, chat: _ChatState, now: float) -> None:
        self._sent_times.append(now)
        chat.recent.append(now)
        if msg.chat_id < 0:
            while len(chat.recent) > 1:
                chat.recent.popleft()

    # ------------------------------------------------------------------ one message
    async def _deliver(self, msg: Outgoing, chat: _ChatState) -> None:
        try:
            message_id = await self._call(msg)
        except RetryAfter as exc:
            self.stats["retry_after"] += 1
            chat.next_allowed = time.monotonic() + _seconds(exc.retry_after)
            await self._failed_attempt(msg, f"RetryAfter {exc.retry_after}")
        except Forbidden as exc:
            self.stats["forbidden"] += 1
            await self._finish(msg, "failed", None, str(exc))
            if self.on_forbidden is not None:
                await self.on_forbidden(msg.chat_id)
        except BadRequest as exc:
            await self._bad_request(msg, exc)
        except (TimedOut, NetworkError) as exc:
            self.stats["errors"] += 1
            backoff = min(self.pacing.max_backoff, 0.2 * 2 ** min(msg.attempts, 10))
            chat.next_allowed = time.monotonic() + backoff * (0.5 + self._random.random())
            await self._failed_attempt(msg, type(exc).__name__)
        except Exception as exc:  # unexpected: keep it queued, slow down
            log.exception("unexpected error sending outbox %s", msg.id)
            chat.next_allowed = time.monotonic() + self.pacing.max_backoff
            await self._failed_attempt(msg, type(exc).__name__)
        else:
            self.stats["sent"] += 1
            await self._finish(msg, "sent", message_id, None)
        finally:
            chat.busy = False
            self._in_flight.discard(msg.id)
            self.wake()

    async def _call(self, msg: Outgoing) -> int | None:
        p = msg.payload
        if msg.kind == "send":
            m = await self.bot.send_message(
                msg.chat_id, p["text"], reply_markup=markup(p.get("buttons"))
            )
            return m.message_id
        if msg.kind == "edit":
            message_id = p.get("message_id")
            if message_id is None:
                message_id = await self._resolve_ref(msg.chat_id, p["edit_ref"])
                if message_id is None:  # the original never arrived: say it as a new message
                    return await self._send_instead(msg)
                if message_id == 0:  # original still queued; try again shortly
                    raise NetworkError("edited message not sent yet")
            result = await self.bot.edit_message_text(
                p["text"],
                chat_id=msg.chat_id,
                message_id=message_id,
                reply_markup=markup(p.get("buttons")),
            )
            return result.message_id if hasattr(result, "message_id") else message_id
        data = bytes.fromhex(p["data"])
        if msg.kind == "photo":
            m = await self.bot.send_photo(
                msg.chat_id, InputFile(data, filename=p["filename"]), caption=p.get("caption")
            )
        else:
            m = await self.bot.send_document(
                msg.chat_id, InputFile(data, filename=p["filename"]), caption=p.get("caption")
            )
        return m.message_id

    async def _send_instead(self, msg: Outgoing) -> int:
        p = msg.payload
        m = await self.bot.send_message(
            msg.chat_id, p["text"], reply_markup=markup(p.get("buttons"))
        )
        return m.message_id

    async def _resolve_ref(self, chat_id: int, ref: str) -> int | None:
        row = await self.db.fetchone(
            "SELECT status, message_id FROM outbox WHERE ref = ? AND chat_id = ? AND kind = 'send'"
            " ORDER BY id DESC LIMIT 1",
            (ref, chat_id),
        )
        if row is None or row["status"] == "failed":
            return None
        if row["status"] == "queued":
            return 0
        return int(row["message_id"])

    async def _bad_request(self, msg: Outgoing, exc: BadRequest) -> None:
        text = str(exc).lower()
        if msg.kind == "edit" and "not modified" in text:
            await self._finish(msg, "sent", msg.payload.get("message_id"), None)
            return
        if msg.kind == "edit" and ("not found" in text or "can't be edited" in text):
            try:
                message_id = await self._send_instead(msg)
            except (RetryAfter, NetworkError) as exc2:
                await self._failed_attempt(msg, type(exc2).__name__)
                return
            await self._finish(msg, "sent", message_id, None)
            return
        log.error("outbox %s refused by Telegram: %s", msg.id, exc)
        await self._finish(msg, "failed", None, f"BadRequest: {exc}")

    async def _finish(
        self, msg: Outgoing, status: str, message_id: int | None, error: str | None
    ) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET status = ?, message_id = ?, sent_at = ?, last_error = ?,"
                " attempts = attempts + 1 WHERE id = ?",
                (status, message_id, iso(self.clock.now()), error, msg.id),
            )

    async def _failed_attempt(self, msg: Outgoing, error: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, msg.id),
            )

    # ------------------------------------------------------------------ for tests and status
    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until nothing deliverable is queued or in flight (tests use this, never sleeps)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queued = await self.db.scalar("SELECT COUNT(*) FROM outbox WHERE status = 'queued'")
            if not queued and not self._in_flight:
                return
            await asyncio.sleep(0.01)
        raise TimeoutError("outbox not drained")


def _seconds(value: Any) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)
