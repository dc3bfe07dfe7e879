"""Drains the non-Telegram outbox rows: one lane per channel (sms, wecom, email).

The same guarantees as the Telegram `Sender`, for providers that are not Telegram:
- priority order: each lane asks SQLite for its most urgent due rows (urgent first, then by id)
  every time it may start a send, so an urgent alert queued behind 1,000 prompts goes next;
- nothing lost: a row is marked sent only after the provider accepted it (a crash in between
  sends it again after the restart: at least once, never zero times);
- retries: a transient failure (network, 5xx, throttling, a provider down or misconfigured)
  keeps the row queued with `not_before` pushed back (5 s, 10 s, 20 s … at most 10 min, by the
  study clock, so tests move it); a refusal of this one message fails the row (logged);
- rate limit: a token bucket per lane at the provider's rate (`Route.rate`, `Route.burst`);
- isolation: every lane is its own task with its own bucket and in-flight slots, so an SMS
  provider that is down never delays the WeCom robot or the mail server, nor Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from datetime import timedelta

from bot.channels.base import Envelope, Rejected, Route, Transient
from bot.clock import Clock, from_iso
from storage import channels as store
from storage.db import Database

log = logging.getLogger(__name__)

IDLE_WAIT = 30.0
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 600.0


def backoff(attempts: int, rng: random.Random) -> float:
    """Seconds before the next try after `attempts` failures (±20 % jitter)."""
    base = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempts - 1))
    return base * rng.uniform(0.8, 1.2)


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.at = time.monotonic()

    def _fill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def available(self, now: float) -> int:
        self._fill(now)
        return int(self.tokens)

    def ready_in(self, now: float) -> float:
        self._fill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._fill(now)
        self.tokens -= 1


class Lane:
    """One channel's queue runner."""

    def __init__(
        self, dispatcher: ChannelDispatcher, route: Route, max_in_flight: int, rng: random.Random
    ) -> None:
        self.d = dispatcher
        self.route = route
        self.channel = route.channel
        self.bucket = TokenBucket(route.rate, route.burst)
        self.max_in_flight = max_in_flight
        self.rng = rng
        self.in_flight: set[int] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()
        self.runner: asyncio.Task[None] | None = None
        self.stats = {"sent": 0, "retried": 0, "failed": 0}
        self.sent_order: list[int] = []  # outbox ids in the order the provider accepted them

    async def run(self) -> None:
        while not self.d.stopping:
            self.wake.clear()
            try:
                delay = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the lane die; the rows stay queued
                log.exception("%s lane: round failed", self.channel)
                delay = 1.0
            if delay <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.wake.wait()

    async def round(self) -> float:
        """Start what the rate limit allows now; return how long to wait at most."""
        if len(self.in_flight) >= self.max_in_flight:
            return IDLE_WAIT  # a completion wakes us
        mono = time.monotonic()
        ready = self.bucket.ready_in(mono)
        if ready > 0:
            return ready
        slots = min(self.max_in_flight - len(self.in_flight), self.bucket.available(mono))
        now = self.d.clock.now()
        async with self.d.db.transaction() as conn:  # never read a half-done transaction
            rows = await store.heads(conn, self.channel, now, sorted(self.in_flight), slots)
        if not rows:
            async with self.d.db.transaction() as conn:
                nxt = await store.next_due(conn, self.channel, now)
            if nxt is None:
                return IDLE_WAIT
            return max(0.001, min(IDLE_WAIT, (from_iso(nxt) - now).total_seconds()))
        for r in rows:
            env = Envelope(
                id=r["id"],
                channel=r["channel"],
                priority=r["priority"],
                destination=r["destination"] or "",
                payload=json.loads(r["payload"]),
                attempts=r["attempts"],
            )
            self.bucket.take(time.monotonic())
            self.in_flight.add(env.id)
            task = asyncio.create_task(self.deliver(env), name=f"{self.channel}-{env.id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return 0.0

    async def deliver(self, env: Envelope) -> None:
        try:
            outcome, error = "sent", None
            try:
                await self.route.send(env)
            except Rejected as exc:
                outcome, error = "failed", str(exc)
            except Transient as exc:
                outcome, error = "retry", str(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # unexpected: kept queued, retried with backoff
                log.exception("%s outbox %s: unexpected error", self.channel, env.id)
                outcome, error = "retry", type(exc).__name__
            now = self.d.clock.now()
            async with self.d.db.transaction() as conn:
                if outcome == "retry":
                    assert error is not None
                    later = now + timedelta(seconds=backoff(env.attempts + 1, self.rng))
                    await store.failed_attempt(conn, env.id, error, later)
                else:
                    await store.finish(conn, env.id, now, outcome, error)
            if outcome == "sent":
                self.stats["sent"] += 1
                self.sent_order.append(env.id)
            elif outcome == "failed":
                self.stats["failed"] += 1
                log.error("%s outbox %s refused for good: %s", self.channel, env.id, error)
            else:
                self.stats["retried"] += 1
                log.warning(
                    "%s outbox %s: attempt %d failed (%s); retried later",
                    self.channel,
                    env.id,
                    env.attempts + 1,
                    error,
                )
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. the database is busy: the row stays queued, retried later
            log.exception("%s outbox %s: could not record the outcome", self.channel, env.id)
        finally:
            self.in_flight.discard(env.id)
            self.wake.set()


class ChannelDispatcher:
    """Runs one `Lane` per configured route. `wake()` after enqueueing (rt.wake_sender does)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        routes: list[Route],
        *,
        max_in_flight: int = 4,
        seed: int | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.stopping = False
        rng = random.Random(seed)
        self.lanes = {r.channel: Lane(self, r, max_in_flight, rng) for r in routes}

    def start(self) -> None:
        self.stopping = False
        for lane in self.lanes.values():
            if lane.runner is None:
                lane.runner = asyncio.create_task(lane.run(), name=f"channel-{lane.channel}")

    async def stop(self) -> None:
        self.stopping = True
        for lane in self.lanes.values():
            if lane.runner is not None:
                lane.runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.runner
                lane.runner = None
            for task in list(lane.tasks):
                task.cancel()
            if lane.tasks:
                await asyncio.gather(*lane.tasks, return_exceptions=True)
        for lane in self.lanes.values():
            with contextlib.suppress(Exception):
                await lane.route.close()

    def wake(self) -> None:
        for lane in self.lanes.values():
            lane.wake.set()

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until no due row of a configured channel is queued or in flight (for tests)."""
        deadline = time.monotonic() + timeout
        channels = list(self.lanes)
        while time.monotonic() < deadline:
            async with self.db.transaction() as conn:
                queued = await store.queued_due(conn, channels, self.clock.now())
            if not queued and not any(lane.in_flight for lane in self.lanes.values()):
                return
            await asyncio.sleep(0.01)
        raise TimeoutError("channel outbox not drained")
