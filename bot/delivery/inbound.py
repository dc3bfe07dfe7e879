"""Inbound flood limits: one noisy user cannot take the bot from everyone else (issue 11 §1).

- **Per user, two token buckets**, checked by the poller on each update's raw JSON before it
  is parsed (`FloodGuard.admit`) (real, monotonic time: how fast people type is not study
  time; tests replace `FloodGuard.monotonic`): `burst` updates at once,
  refilled at `per_second`; and `per_minute` a minute. A patient tapping through a diary
  (about one tap a second) never meets them. Over the limit an update is counted and dropped:
  not parsed, no handler runs, nothing is written for it (the processed update id is saved
  once per batch by the poller), no reply — except one "please slow down" at most every
  `slow_down_every` seconds.
- **Strangers** (neither linked patients nor active staff; `FloodGuard.on_update`, before any
  other handler, group -3) get at most one message every
  `stranger_reply_every` seconds of the study clock (`bot.messenger.ReplyGate`; a
  successful enrolment code lifts it, they are a patient then), and what they try is counted
  per hour instead of audited one entry per attempt (`storage/strangers.py`,
  `audit_or_count`).

The buckets live in memory: a restart forgets them, which only ever lets a few more through.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite
from telegram import Update
from telegram.ext import ContextTypes

from bot import messenger
from bot.i18n import locale_for, t
from bot.messenger import ReplyGate, reply_gate
from bot.services.runtime import Runtime
from storage import audit, repo, strangers

log = logging.getLogger(__name__)

FLOOD_GROUP = -3


@dataclass(frozen=True)
class InboundLimits:
    burst: int = 5
    """Updates a user may send at once."""
    per_second: float = 2.0
    """Sustained rate of the short bucket (tokens a second)."""
    per_minute: int = 40
    """Updates a user may send in a minute (the long bucket, refilled evenly)."""
    slow_down_every: float = 60.0
    """At most one "please slow down" per user in this many seconds."""
    stranger_reply_every: float = 60.0
    """At most one message to a stranger in this many seconds."""


#: For tests that play users at machine speed with a frozen clock (like `MACHINE_SPEED`).
NO_LIMITS = InboundLimits(burst=10**9, per_second=1e9, per_minute=10**9, stranger_reply_every=0.0)

#: The stranger sending the update being handled (None: a patient or staff member).
current_stranger: ContextVar[int | None] = ContextVar("current_stranger", default=None)


async def audit_or_count(
    conn: aiosqlite.Connection,
    now: datetime,
    actor: str,
    action: str,
    *,
    entity: str | None = None,
    new: Any = None,
) -> None:
    """An audit entry — or, for a stranger, one more in their hourly count (storage/strangers)."""
    stranger = current_stranger.get()
    if stranger is None:
        await audit.record(conn, now, actor, action, entity=entity, new=new)
        return
    what = ":".join(str(x) for x in (action, entity, new) if x)
    await strangers.note(conn, now, stranger, what)


def not_a_stranger() -> None:
    """The sender just became a patient (their code was right): no stranger limits any more."""
    current_stranger.set(None)
    reply_gate.set(None)


class _Buckets:
    __slots__ = ("at", "long", "short")

    def __init__(self, limits: InboundLimits, at: float) -> None:
        self.short = float(limits.burst)
        self.long = float(limits.per_minute)
        self.at = at


class FloodGuard:
    def __init__(self, rt: Runtime, limits: InboundLimits | None = None) -> None:
        self.rt = rt
        self.limits = limits or InboundLimits()
        self.monotonic: Callable[[], float] = time.monotonic
        self._buckets: dict[int, _Buckets] = {}
        self._warned: dict[int, float] = {}
        self._stranger_replies: dict[int, datetime] = {}
        self.dropped: Counter[tuple[int, datetime]] = Counter()  # (user, hour) → count
        self.stats = {"dropped": 0, "slow_down": 0}

    # ------------------------------------------------------------------ before parsing
    async def admit(self, raw: Any) -> bool:
        """The poller asks this for every update *before* parsing it (`raw`: Telegram's JSON).

        Over the limit: counted, dropped (False) — no parsing, no handler, nothing written —
        with one "please slow down" a minute. Checking the raw JSON keeps a flood cheap: a
        patient's tap queued behind 1,000 dropped updates waits for 1,000 dictionary lookups,
        not for 1,000 updates going through python-telegram-bot.
        """
        sender, chat = _raw_sender_and_chat(raw)
        if sender is None or not isinstance(sender.get("id"), int):
            return True
        user_id = int(sender["id"])
        if self._take(user_id, self.monotonic()):
            return True
        await self._drop(user_id, sender, chat)
        return False

    # ------------------------------------------------------------------ the handler
    async def on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Before every handler: is the sender a stranger? (then: one reply a minute, and
        their attempts counted, not audited one by one)."""
        current_stranger.set(None)
        reply_gate.set(None)
        if not isinstance(update, Update):
            return
        user = update.effective_user
        if user is None:
            return
        if await strangers.is_stranger(self.rt.db.conn, user.id):
            current_stranger.set(user.id)
            chat = update.effective_chat
            if chat is not None:
                reply_gate.set(
                    ReplyGate(
                        chat.id,
                        self._stranger_replies,
                        self.rt.now(),
                        self.limits.stranger_reply_every,
                    )
                )

    def _take(self, user_id: int, at: float) -> bool:
        limits = self.limits
        b = self._buckets.get(user_id)
        if b is None:
            if len(self._buckets) > 10_000:
                self._forget_full(at)
            b = self._buckets[user_id] = _Buckets(limits, at)
        elapsed = max(0.0, at - b.at)
        b.at = at
        b.short = min(float(limits.burst), b.short + elapsed * limits.per_second)
        b.long = min(float(limits.per_minute), b.long + elapsed * limits.per_minute / 60.0)
        if b.short < 1.0 or b.long < 1.0:
            return False
        b.short -= 1.0
        b.long -= 1.0
        return True

    def _forget_full(self, at: float) -> None:
        """Users whose buckets have refilled are the same as users never seen."""
        limits = self.limits
        for user_id, b in list(self._buckets.items()):
            if at - b.at >= max(limits.burst / limits.per_second, 60.0):
                del self._buckets[user_id]

    async def _drop(
        self, user_id: int, sender: dict[str, Any], chat: dict[str, Any] | None
    ) -> None:
        """Counted, not handled, nothing written — but one "please slow down" a minute."""
        now = self.rt.now()
        self.stats["dropped"] += 1
        self.dropped[(user_id, strangers.hour_of(now))] += 1
        if self.stats["dropped"] in (1, 100) or self.stats["dropped"] % 1000 == 0:
            log.warning("inbound flood limit: %d updates dropped so far", self.stats["dropped"])
        if chat is None or chat.get("type") != "private" or not isinstance(chat.get("id"), int):
            return
        chat_id = int(chat["id"])
        last = self._warned.get(user_id)
        at = self.monotonic()
        if last is not None and at - last < self.limits.slow_down_every:
            return
        self._warned[user_id] = at
        if await strangers.is_stranger(self.rt.db.conn, user_id):
            gate = ReplyGate(chat_id, self._stranger_replies, now, self.limits.stranger_reply_every)
            if not gate.allows(chat_id):
                return  # a stranger's one message a minute is already used up
        self.stats["slow_down"] += 1
        patient = await repo.patient_by_user(self.rt.db.conn, user_id)
        lang = patient.lang if patient is not None and patient.lang else None
        code = sender.get("language_code")
        _ = t(lang or locale_for(code if isinstance(code, str) else None))
        text = _(
            "You are sending messages too quickly, so I did not read some of them. "
            "Please wait a minute, then go on."
        )
        async with self.rt.db.transaction() as conn:
            await messenger.enqueue(conn, now, chat_id, text)
        self.rt.wake_sender()

    # ------------------------------------------------------------------ the hourly summary
    async def on_tick(self, now: datetime) -> None:
        """Scheduler hook: finished hours of stranger activity become one audit entry each."""
        current = strangers.hour_of(now)
        dropped = {k: v for k, v in self.dropped.items() if k[1] < current}
        if dropped or await strangers.pending_before(self.rt.db.conn, current):
            async with self.rt.db.transaction() as conn:
                await strangers.flush(conn, now, dropped)
        for key in dropped:
            self.dropped.pop(key, None)
        at = self.monotonic()
        for user_id, when in list(self._warned.items()):
            if at - when >= self.limits.slow_down_every:
                del self._warned[user_id]
        for chat_id, replied in list(self._stranger_replies.items()):
            if (now - replied).total_seconds() >= self.limits.stranger_reply_every:
                del self._stranger_replies[chat_id]

    async def next_wake(self, now: datetime) -> datetime | None:
        """Wake hook: the end of the hour, if there is anything to summarise."""
        pending = await strangers.pending_count(self.rt.db.conn)
        if pending or self.dropped:
            return strangers.next_flush(now)
        return None


def _raw_sender_and_chat(raw: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Who sent this update and in which chat, from Telegram's JSON (any update type)."""
    if not isinstance(raw, dict):
        return None, None
    for key, value in raw.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        sender = value.get("from") or value.get("user")
        chat = value.get("chat")
        if chat is None and isinstance(value.get("message"), dict):
            chat = value["message"].get("chat")  # a button tap
        return (
            sender if isinstance(sender, dict) else None,
            chat if isinstance(chat, dict) else None,
        )
    return None, None
