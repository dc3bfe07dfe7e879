"""Flood control as pure bookkeeping: may the next message to this chat start now, or when?

Telegram allows a bot about 30 messages a second overall, about one a second per private chat
(short bursts are tolerated) and 20 a minute per group, and answers 429 with `retry_after`
beyond that. Telegram counts a message when it *accepts* it, at the end of the request; the
sender's clock only knows when a request *starts*. So a send is counted here from its start
until one window after its completion: however much the latency varies, two of our sends can
never look closer together to Telegram than the rule we applied.

Rules (all windows by completion time, in-flight sends counted as "now"):
- overall: at most `overall_per_second` in any second, started on a smooth schedule of 1/rate
  apart (a few back to back only to catch up), so an urgent alert never queues behind a burst
  already on the wire;
- private chat: one message per `private_interval` on average (a token bucket, refilled one
  token per interval, counted at completion). Replies to the patient's own action may use a
  burst of `private_burst` tokens, so a patient tapping through a diary never waits; scheduled
  messages (prompts, alerts, digests) never use the burst;
- group: at most `group_per_minute` a minute and one per `group_interval`; prompts and digests
  leave `group_reserve` of the minute free for urgent alerts and replies;
- `RetryAfter`: paused for the scope it concerns (see `on_retry_after`);
- network errors: exponential backoff with jitter per chat; many failures in a row across
  chats (an outage) pause everything, so we do not hammer a struggling server.

Pure: no I/O, no clock. `now` is a monotonic time in seconds passed in by the caller.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from enum import Enum

from bot.messenger import Priority


@dataclass(frozen=True)
class Pacing:
    overall_per_second: int = 30
    private_interval: float = 1.0
    private_burst: int = 3
    group_per_minute: int = 20
    group_reserve: int = 5
    group_interval: float = 1.0
    max_in_flight: int = 16
    backoff_base: float = 0.5
    """First retry delay after a network error; doubles per attempt (with jitter)."""
    backoff_max: float = 30.0
    quick_attempts: int = 5
    """Retries in a row before a message is parked (stays queued, retried `park_seconds` later)."""
    park_seconds: float = 120.0
    outage_failures: int = 8
    """Failures in a row, across all chats, that pause every send (an outage, not one chat)."""


class Scope(Enum):
    CHAT = "chat"
    GLOBAL = "global"


GROUP_WINDOW = 60.0
OVERALL_WINDOW = 1.0
SMOOTH_SLACK = 2


@dataclass
class _Window:
    """Sends of one scope: how many are in flight, and when the others completed (ascending)."""

    in_flight: int = 0
    done: list[float] = field(default_factory=list)

    def count(self, now: float, span: float) -> int:
        return self.in_flight + len(self.done) - bisect.bisect_right(self.done, now - span)

    def ready_at(self, now: float, span: float, capacity: int) -> float:
        """Earliest time the count within `span` drops below `capacity` (inf: a send must end)."""
        allowed = capacity - self.in_flight  # completed sends the window may still hold, plus one
        if allowed <= 0:
            return math.inf
        first = bisect.bisect_right(self.done, now - span)
        inside = len(self.done) - first
        if inside < allowed:
            return now
        return self.done[first + inside - allowed] + span

    def prune(self, now: float, horizon: float) -> None:
        cut = bisect.bisect_right(self.done, now - horizon)
        if cut:
            del self.done[:cut]


@dataclass
class _Chat:
    window: _Window = field(default_factory=_Window)
    paused_until: float = 0.0  # 429
    backoff_until: float = 0.0  # network errors (lifted when an outage ends)
    # Private chats, GCRA form of the token bucket: the bucket is full at or after `tat`
    # (theoretical arrival time); each send moves it one interval on from its completion.
    tat: float = -math.inf
    crowded: bool = False  # at the start of the current send: could a per-chat limit be hit?


class FloodGate:
    """The sender asks `ready_at` before a send and reports `start`/`finish`/the outcome."""

    def __init__(self, pacing: Pacing | None = None, rng: random.Random | None = None) -> None:
        self.pacing = pacing or Pacing()
        self.rng = rng or random.Random()
        self._overall = _Window()
        self._slot = -math.inf  # the next start of the smooth schedule (GCRA, like a chat's tat)
        self._paused_until = 0.0  # 429 for the whole bot
        self._outage_until = 0.0  # many network errors in a row
        self._chats: dict[int, _Chat] = {}
        self._failures_in_a_row = 0
        self._last_429: tuple[float, int] | None = None
        self._last_prune = 0.0
        self._watch: set[int] = set()  # chats that may be held: in flight, paused, groups

    # ------------------------------------------------------------------ questions
    def overall_ready_at(self, now: float) -> float:
        p = self.pacing
        # Up to SMOOTH_SLACK starts may come back to back to catch up on timer lateness;
        # the one-second window above is what keeps us within the limit.
        return max(
            self._paused_until,
            self._outage_until,
            self._slot - SMOOTH_SLACK / p.overall_per_second,
            self._overall.ready_at(now, OVERALL_WINDOW, p.overall_per_second),
        )

    def ready_at(self, chat_id: int, priority: int, now: float) -> float:
        """Earliest time a message of `priority` to `chat_id` may start (`now`: at once)."""
        return max(self.overall_ready_at(now), self.chat_ready_at(chat_id, priority, now))

    def chat_ready_at(self, chat_id: int, priority: int, now: float) -> float:
        p = self.pacing
        chat = self._chats.get(chat_id)
        if chat is None:
            return now
        w = chat.window
        if chat_id < 0:
            capacity = p.group_per_minute
            if priority >= Priority.PROMPT:
                capacity -= p.group_reserve
            ready = max(
                w.ready_at(now, GROUP_WINDOW, capacity), w.ready_at(now, p.group_interval, 1)
            )
        elif w.in_flight:
            ready = math.inf  # one at a time into a private chat (the sender keeps order)
        elif priority == Priority.REPLY:
            ready = chat.tat - (p.private_burst - 1) * p.private_interval
        else:
            ready = chat.tat
        return max(now, ready, chat.paused_until, chat.backoff_until)

    def held_chats(self, now: float) -> tuple[list[int], float]:
        """Chats where no message at all can start now, and when the first of them frees up.

        Held: a send in flight (a completion wakes the sender), paused (429, backoff), a group
        whose minute is full, or a private chat waiting for its pace even for a reply (the
        most lenient priority). The sender leaves their queued rows out of its query, so a chat
        with a long backlog cannot crowd everyone else out of the rows it looks at. Private
        chats pacing only their next scheduled message are not held: a reply may still go.
        """
        held: list[int] = []
        soonest = math.inf
        for chat_id in list(self._watch):
            chat = self._chats.get(chat_id)
            if chat is None:
                self._watch.discard(chat_id)
                continue
            if chat.window.in_flight:
                held.append(chat_id)
                continue
            free = max(chat.paused_until, chat.backoff_until)
            if chat_id < 0:
                free = max(free, self.chat_ready_at(chat_id, Priority.URGENT, now))
            else:
                free = max(free, self.chat_ready_at(chat_id, Priority.REPLY, now))
            if free > now:
                held.append(chat_id)
                soonest = min(soonest, free)
            elif chat_id > 0:
                self._watch.discard(chat_id)
        return held, soonest

    # ------------------------------------------------------------------ bookkeeping
    def start(self, chat_id: int, now: float) -> None:
        chat = self._chats.setdefault(chat_id, _Chat())
        chat.crowded = self._crowded(chat_id, chat, now)
        chat.window.in_flight += 1
        self._overall.in_flight += 1
        self._watch.add(chat_id)
        self._slot = max(self._slot, now) + 1.0 / self.pacing.overall_per_second

    def finish(self, chat_id: int, now: float) -> None:
        """The request ended (whatever the outcome): from now on it counts as a completed send."""
        chat = self._chats.setdefault(chat_id, _Chat())
        for w in (chat.window, self._overall):
            w.in_flight = max(0, w.in_flight - 1)
            w.done.append(now)
        if chat_id > 0:
            chat.tat = max(chat.tat, now) + self.pacing.private_interval
        self._prune(now)

    def on_success(self, chat_id: int) -> bool:
        """A send went through. True if it ends an outage (failures in a row across chats):
        then every network backoff is lifted at once, and the sender releases parked rows."""
        ended = self._failures_in_a_row >= self.pacing.outage_failures
        self._failures_in_a_row = 0
        if ended:
            self._outage_until = 0.0
            for chat in self._chats.values():
                chat.backoff_until = 0.0
        return ended

    def on_retry_after(self, chat_id: int, seconds: float, now: float) -> Scope:
        """Honour a 429 for the scope it concerns.

        Telegram does not say which limit was hit. If our own record for this chat could explain
        it (a reply burst into a private chat, a busy group minute) it concerns that chat;
        otherwise, or when another chat got one within the last second, it concerns the whole
        bot, and every send waits (sending more would only earn more 429s).
        """
        until = now + seconds
        chat = self._chats.setdefault(chat_id, _Chat())
        chat.paused_until = max(chat.paused_until, until)
        self._watch.add(chat_id)
        other_recently = (
            self._last_429 is not None
            and self._last_429[1] != chat_id
            and now - self._last_429[0] < OVERALL_WINDOW
        )
        self._last_429 = (now, chat_id)
        if chat.crowded and not other_recently:
            return Scope.CHAT
        self._paused_until = max(self._paused_until, until)
        return Scope.GLOBAL

    def on_network_error(self, chat_id: int, attempts: int, now: float) -> float:
        """Back off this chat (exponential, jittered); an outage pauses everyone. Returns delay."""
        p = self.pacing
        self._failures_in_a_row += 1
        step = max(0, (attempts - 1) % p.quick_attempts)
        delay = self._jitter(min(p.backoff_max, p.backoff_base * 2**step))
        chat = self._chats.setdefault(chat_id, _Chat())
        chat.backoff_until = max(chat.backoff_until, now + delay)
        self._watch.add(chat_id)
        beyond = self._failures_in_a_row - p.outage_failures
        if beyond >= 0:
            pause = self._jitter(min(p.backoff_max, p.backoff_base * 2 ** min(beyond, 16)))
            self._outage_until = max(self._outage_until, now + pause)
        return delay

    def park_delay(self) -> float:
        """How long a message that failed `quick_attempts` times in a row waits (jittered)."""
        return self.pacing.park_seconds * (0.75 + 0.5 * self.rng.random())

    def should_park(self, attempts: int) -> bool:
        return attempts > 0 and attempts % self.pacing.quick_attempts == 0

    # ------------------------------------------------------------------ internals
    def _jitter(self, delay: float) -> float:
        return delay * (0.5 + self.rng.random())

    def _crowded(self, chat_id: int, chat: _Chat, now: float) -> bool:
        p = self.pacing
        w = chat.window
        if chat_id < 0:
            return w.count(now, GROUP_WINDOW) >= p.group_per_minute - p.group_reserve
        return w.in_flight > 0 or now < chat.tat  # sending on burst credit

    def _prune(self, now: float) -> None:
        self._overall.prune(now, OVERALL_WINDOW)
        if now - self._last_prune < 10.0:
            return
        self._last_prune = now
        for chat_id in list(self._chats):
            chat = self._chats[chat_id]
            chat.window.prune(now, GROUP_WINDOW if chat_id < 0 else 0.0)
            idle = (
                not chat.window.in_flight
                and max(chat.paused_until, chat.backoff_until) <= now
                and chat.tat <= now
            )
            if idle and not chat.window.done:
                del self._chats[chat_id]
                self._watch.discard(chat_id)
