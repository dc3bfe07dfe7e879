"""Drains the outbox: priorities first, Telegram's flood limits respected, nothing dropped.

Why not python-telegram-bot's `BaseRateLimiter`: a rate limiter sits *inside* each API call, so
it can delay calls that were already made but never reorder them — an urgent alert made after
600 prompts waits behind all of them. Here the outbox table is the priority queue: each round
asks SQLite for the most urgent queued rows, skips chats that must wait, and starts what
`FloodGate` (bot/delivery/pacing.py) allows. See docs/delivery.md.

Outcomes: sent (with Telegram's message id) | 429 (the scope waits, the row stays queued) |
5xx, timeout, dropped connection (backoff with jitter; after `quick_attempts` failures in a row
the row is *parked*: still queued, `not_before` a couple of minutes later) | 403 (the patient
blocked the bot: row failed, `on_forbidden`) | 400 (refused for good: row failed, logged) |
group upgraded to a supergroup (queued rows follow the new chat id). Edits of a message that no
longer exists are sent as a new message.

A message goes out twice only if the process dies between Telegram accepting it and the
`sent` row being committed, or if Telegram accepted a request whose answer never arrived
(timeout): the Bot API has no idempotency key (docs/delivery.md).

Retry delays use real (monotonic) time: they are about Telegram, not about study time; parking
uses the study clock, so tests move it with `advance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter

from bot.clock import Clock, from_iso, iso
from bot.delivery.pacing import FloodGate, Pacing, Scope
from bot.messenger import Outgoing, row_to_outgoing
from storage import audit, outbox, repo
from storage.db import Database

log = logging.getLogger(__name__)

OnForbidden = Callable[[int], Awaitable[None]]

__all__ = ["Pacing", "Sender", "markup"]

# Rows looked at per round. Chats that cannot send now are left out of the query, so this only
# has to cover chats whose head row is skipped for pacing or waits for the message it edits.
BATCH = 200
# Queries per round at most: each one leaves out the chats the rounds before looked at.
MAX_QUERIES = 4
IDLE_WAIT = 30.0


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


@dataclass(frozen=True)
class _Head:
    """The light part of a queued row: enough to decide whether it may go now."""

    id: int
    priority: int
    chat_id: int


@dataclass(frozen=True)
class _Result:
    """What one attempt came to; `Sender._record` turns it into a row update."""

    kind: str  # sent | retry_after | transient | forbidden | rejected | migrated | deferred
    message_id: int | None = None
    error: str | None = None
    retry_after: float = 0.0
    new_chat_id: int | None = None


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
        self.gate = FloodGate(self.pacing, random.Random(seed))
        self.on_forbidden = on_forbidden
        self._wake = asyncio.Event()
        self._in_flight: dict[int, int] = {}  # outbox id -> chat id
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        # Rows parked by an earlier process (or this one) are released by the first send that
        # goes through: Telegram is reachable again.
        self._release_parked = True
        self.stats: dict[str, int] = {
            "sent": 0,
            "retry_after": 0,
            "retry_after_global": 0,
            "errors": 0,
            "parked": 0,
            "forbidden": 0,
            "rejected": 0,
            "fallback": 0,
            "migrated": 0,
            "latency_ms": 0,
        }

    # ------------------------------------------------------------------ lifecycle
    @property
    def task(self) -> asyncio.Task[None] | None:
        """The sender's loop (the bot exits if it ever ends while not stopping)."""
        return self._runner

    def start(self) -> None:
        self._stopping = False
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="outbox-sender")

    async def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
            except Exception:  # it died earlier; the bot reported why (DiaryBot.failed)
                log.debug("sender had stopped", exc_info=True)
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        while not self._stopping:
            # Clear *before* looking: a send that completes while we query wakes the next round.
            self._wake.clear()
            try:
                delay = await self._dispatch()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the sender die; the rows stay queued
                log.exception("outbox sender round failed")
                delay = 1.0
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the event is set, and stop() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.001, delay)):
                    await self._wake.wait()

    async def _dispatch(self) -> float:
        """Start every send that pacing allows now; return how long to sleep at most."""
        now = time.monotonic()
        gate = self.gate
        if len(self._in_flight) >= self.pacing.max_in_flight:
            return IDLE_WAIT  # a completion wakes us
        overall = gate.overall_ready_at(now)
        if overall > now:
            return min(IDLE_WAIT, overall - now)
        held, free_at = gate.held_chats(now)
        wait = min(IDLE_WAIT, free_at - now)
        started = 0
        looked: set[int] = set()
        # Fair across chats: a chat whose first row must wait (pacing, an edit's message still
        # queued) is left out of the next query, so however long its backlog it never hides
        # other chats' rows from the batch looked at.
        for _ in range(MAX_QUERIES):
            heads = await self._heads(set(held) | looked)
            for head in heads:
                if head.chat_id in looked:
                    continue
                looked.add(head.chat_id)  # per-chat order: only a chat's first row may go
                ready = gate.chat_ready_at(head.chat_id, head.priority, now)
                if ready > now:
                    wait = min(wait, ready - now)
                    continue
                # Load the row first: a send counts from its start, so start it just before
                # the call.
                row = await outbox.telegram_row(self.db.conn, head.id)
                if row is None:
                    continue
                now = time.monotonic()
                gate.start(head.chat_id, now)
                started += 1
                self._in_flight[head.id] = head.chat_id
                msg = row_to_outgoing(row)
                task = asyncio.create_task(self._deliver(head, msg), name=f"outbox-{head.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                if len(self._in_flight) >= self.pacing.max_in_flight:
                    return IDLE_WAIT
                overall = gate.overall_ready_at(now)
                if overall > now:
                    return max(0.001, min(wait, overall - now))
            if len(heads) < BATCH:
                break
        if not started:
            wait = min(wait, await self._until_parked_due())
        return max(0.001, wait)

    async def _heads(self, exclude: set[int]) -> list[_Head]:
        """Queued rows due now, most urgent first, minus excluded chats and rows that must wait
        (`storage.outbox.telegram_due_heads`)."""
        busy = exclude | set(self._in_flight.values())
        # The transaction is the lock: never read another task's half-done transaction.
        async with self.db.transaction() as conn:
            rows = await outbox.telegram_due_heads(conn, self.clock.now(), busy, BATCH)
        return [_Head(*r) for r in rows if r[0] not in self._in_flight]

    async def _until_parked_due(self) -> float:
        """Seconds until the earliest parked row is due (the study clock's seconds)."""
        when = await outbox.telegram_next_parked(self.db.conn, self.clock.now())
        if when is None:
            return IDLE_WAIT
        return max(0.001, (from_iso(when) - self.clock.now()).total_seconds())

    # ------------------------------------------------------------------ one message
    async def _deliver(self, head: _Head, msg: Outgoing) -> None:
        finished = False
        try:
            began = time.monotonic()
            result = await self._attempt(msg)
            ended = time.monotonic()
            self.gate.finish(head.chat_id, ended)
            self._latency(ended - began)
            finished = True
            await self._record(msg, result)
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. the database is busy: the row stays queued, retried later
            log.exception("outbox %s: could not complete the send", head.id)
        finally:
            if not finished:
                self.gate.finish(head.chat_id, time.monotonic())
            self._in_flight.pop(head.id, None)
            self.wake()

    async def _attempt(self, msg: Outgoing) -> _Result:
        try:
            return _Result("sent", message_id=await self._call(msg))
        except RetryAfter as exc:
            return _Result("retry_after", error="RetryAfter", retry_after=_seconds(exc.retry_after))
        except Forbidden as exc:
            return _Result("forbidden", error=f"Forbidden: {exc}")
        except ChatMigrated as exc:
            return _Result("migrated", error="ChatMigrated", new_chat_id=exc.new_chat_id)
        except BadRequest as exc:
            return _Result("rejected", error=f"BadRequest: {exc}")
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            return _Result("transient", error=type(exc).__name__)
        except _Deferred:
            return _Result("deferred")
        except Exception as exc:  # unexpected: keep it queued, it is retried with backoff
            log.exception("unexpected error sending outbox %s", msg.id)
            return _Result("transient", error=type(exc).__name__)

    async def _call(self, msg: Outgoing) -> int | None:
        p = msg.payload
        if msg.kind == "send":
            return await self._send_text(msg)
        if msg.kind == "edit":
            return await self._edit(msg)
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

    async def _send_text(self, msg: Outgoing) -> int:
        p = msg.payload
        m = await self.bot.send_message(
            msg.chat_id, p["text"], reply_markup=markup(p.get("buttons"))
        )
        return m.message_id

    async def _edit(self, msg: Outgoing) -> int | None:
        """Edit in place; a message that is gone (or too old to edit) is sent anew."""
        p = msg.payload
        message_id = p.get("message_id")
        if message_id is None:
            message_id = await self._resolve_ref(msg.chat_id, p["edit_ref"])
            if message_id is None:  # the original was never delivered: say it as a new message
                self.stats["fallback"] += 1
                return await self._send_text(msg)
        try:
            result = await self.bot.edit_message_text(
                p["text"],
                chat_id=msg.chat_id,
                message_id=message_id,
                reply_markup=markup(p.get("buttons")),
            )
        except BadRequest as exc:
            text = str(exc).lower()
            if "not modified" in text:  # already shows this (e.g. re-sent after a crash)
                return int(message_id)
            if "not found" in text or "can't be edited" in text:
                self.stats["fallback"] += 1
                return await self._send_text(msg)
            raise
        return result.message_id if hasattr(result, "message_id") else int(message_id)

    async def _resolve_ref(self, chat_id: int, ref: str) -> int | None:
        row = await outbox.latest_send_of_ref(self.db.conn, ref, chat_id)
        if row is not None and row["status"] == "queued":
            raise _Deferred
        if row is None or row["status"] == "failed" or row["message_id"] is None:
            return None
        return int(row["message_id"])

    def _latency(self, seconds: float) -> None:
        """Request latency (exponential average, ms): the health line shows it."""
        ms = seconds * 1000
        old = self.stats["latency_ms"]
        self.stats["latency_ms"] = round(ms if not old else 0.9 * old + 0.1 * ms)

    # ------------------------------------------------------------------ outcomes
    async def _record(self, msg: Outgoing, result: _Result) -> None:
        now = time.monotonic()
        gate = self.gate
        if result.kind == "sent":
            outage_over = gate.on_success(msg.chat_id)
            self.stats["sent"] += 1
            await self._finish(msg, "sent", result.message_id, None)
            if outage_over or self._release_parked:
                await self._release()
        elif result.kind == "retry_after":
            scope = gate.on_retry_after(msg.chat_id, result.retry_after, now)
            self.stats["retry_after"] += 1
            if scope is Scope.GLOBAL:
                self.stats["retry_after_global"] += 1
            log.warning(
                "429 for chat %s: waiting %.1f s (%s)", msg.chat_id, result.retry_after, scope.value
            )
            await self._note_error(msg, f"RetryAfter {result.retry_after:g}s ({scope.value})")
        elif result.kind == "transient":
            self.stats["errors"] += 1
            await self._transient(msg, result.error or "error", now)
        elif result.kind == "forbidden":
            self.stats["forbidden"] += 1
            await self._finish(msg, "failed", None, result.error)
            if self.on_forbidden is not None:
                await self.on_forbidden(msg.chat_id)
        elif result.kind == "rejected":
            self.stats["rejected"] += 1
            log.error("outbox %s refused by Telegram: %s", msg.id, result.error)
            await self._finish(msg, "failed", None, result.error)
        elif result.kind == "migrated" and result.new_chat_id is not None:
            self.stats["migrated"] += 1
            await self._migrate(msg.chat_id, result.new_chat_id)

    async def _transient(self, msg: Outgoing, error: str, now: float) -> None:
        """Bounded quick retries with backoff, then park: the row stays queued, retried later."""
        attempts = msg.attempts + 1
        if self.gate.should_park(attempts):
            self.stats["parked"] += 1
            self._release_parked = True
            until = self.clock.now() + timedelta(seconds=self.gate.park_delay())
            log.warning(
                "outbox %s: %d failures (%s), retrying at %s", msg.id, attempts, error, iso(until)
            )
            await self._failed_attempt(msg, error, not_before=until)
            return
        self.gate.on_network_error(msg.chat_id, attempts, now)
        await self._failed_attempt(msg, error)

    async def _finish(
        self, msg: Outgoing, status: str, message_id: int | None, error: str | None
    ) -> None:
        async with self.db.transaction() as conn:
            # A file's bytes are not kept once Telegram has them, nor a secret text.
            await outbox.finish(conn, msg.id, status, message_id, self.clock.now(), error)

    async def _release(self) -> None:
        """Telegram answers again: parked rows are due now (taken urgent first, as always)."""
        self._release_parked = False
        async with self.db.transaction() as conn:
            released = await outbox.telegram_release_parked(conn, self.clock.now())
        if released:
            log.info("Telegram answers again: %d parked messages released", released)
            self.wake()

    async def _failed_attempt(
        self, msg: Outgoing, error: str, *, not_before: datetime | None = None
    ) -> None:
        async with self.db.transaction() as conn:
            await outbox.failed_attempt(conn, msg.id, error, not_before)

    async def _note_error(self, msg: Outgoing, error: str) -> None:
        async with self.db.transaction() as conn:
            await outbox.note_error(conn, msg.id, error)

    async def _migrate(self, old: int, new: int) -> None:
        """The group became a supergroup: its queued messages and the staff group follow."""
        now = self.clock.now()
        async with self.db.transaction() as conn:
            await outbox.move_chat(conn, old, new)
            if await repo.move_staff_group(conn, old, new):
                await audit.record(conn, now, "system", "staff_group", old=str(old), new=str(new))
        log.warning("chat %s migrated to %s: queued messages follow", old, new)

    # ------------------------------------------------------------------ for tests and status
    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until nothing due is queued or in flight (tests use this, never sleeps on a schedule).

        Parked rows (waiting for a later retry) do not count: they are due at a later time.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queued = await outbox.due_count(self.db.conn, self.clock.now())
            if not queued and not self._in_flight:
                return
            await asyncio.sleep(0.01)
        raise TimeoutError("outbox not drained")


class _Deferred(Exception):
    """The message this edit refers to is still queued: try again after it is sent."""


def _seconds(value: Any) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)
