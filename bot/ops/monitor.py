"""What "healthy" means, measured inside the running bot.

Unhealthy (`/healthz` answers 503, the heartbeat stays silent) when
- no `getUpdates` has succeeded for `POLL_STALE` (2 minutes): patients are not being heard;
- an urgent message (an alert to the study team) has been queued longer than `URGENT_STALE`
  (5 minutes): the possible-SAE path is stuck.

Times come from the runtime's clock, so tests move them with the `FakeClock`. The outbox is
read through a read-only connection of our own: a health check never queues behind the bot's
writes on the shared connection (WAL lets readers run beside the writer).

`/healthz` must answer fast while the bot is busy (p95 ≤ 20 ms during a 600-prompt fan-out,
bench/health.py), so it reads no database: the oldest queued urgent message is looked up by a
small loop every `URGENT_REFRESH` seconds and on every tick, and `/healthz` uses that (at most a
second old, against a 5-minute threshold). `/metrics` reads the database on each scrape.

The last successful poll is also written to `meta` (`ops_last_poll_at`) at most once a minute,
so `diarybot watchdog` can tell from the database alone that the bot has gone quiet.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.clock import from_iso, iso
from bot.delivery.status import Snapshot, snapshot
from bot.messenger import Priority
from storage import delivery as delivery_store
from storage import repo
from storage.db import Database

if TYPE_CHECKING:
    from bot.app import DiaryBot

log = logging.getLogger(__name__)

POLL_STALE = timedelta(minutes=2)
URGENT_STALE = timedelta(minutes=5)
PERSIST_EVERY = timedelta(minutes=1)
URGENT_REFRESH = 1.0  # seconds of real time
LAST_POLL_KEY = "ops_last_poll_at"


def readonly_uri(path: str) -> str:
    return Path(os.path.abspath(path)).as_uri() + "?mode=ro"


@dataclass(frozen=True)
class Health:
    ok: bool
    problems: list[str]
    now: datetime
    polling_age_seconds: float
    last_poll_ok: datetime | None
    oldest_urgent_seconds: float | None
    last_tick: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unhealthy",
            "problems": self.problems,
            "now": iso(self.now),
            "polling_age_seconds": round(self.polling_age_seconds, 3),
            "last_poll_ok": iso(self.last_poll_ok) if self.last_poll_ok else None,
            "oldest_urgent_queued_seconds": (
                None if self.oldest_urgent_seconds is None else round(self.oldest_urgent_seconds, 3)
            ),
            "last_tick": iso(self.last_tick) if self.last_tick else None,
        }


class OpsMonitor:
    def __init__(self, bot: DiaryBot) -> None:
        self.bot = bot
        self.rt = bot.rt
        self.started = self.rt.now()
        self.last_poll_ok: datetime | None = None
        self.last_tick: datetime | None = None
        self._persisted: datetime | None = None
        self._reader: Database | None = None
        self._urgent: datetime | None = None  # created_at of the oldest queued urgent message
        self._urgent_known = False
        self._refresher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ wiring
    def attach(self) -> None:
        """Listen to polls and ticks; call before `DiaryBot.start`."""
        self.bot.hooks.poll_ok.append(self.on_poll_ok)
        self.bot.scheduler.hooks.append(self.on_tick)
        self.bot.scheduler.wake_hooks.append(self.next_wake)

    async def open(self) -> None:
        uri = readonly_uri(self.rt.db.path)
        self._reader = await delivery_store.open_reader(uri, self.rt.db.path)
        await self.refresh_urgent()
        self._refresher = asyncio.create_task(self._refresh_loop(), name="ops-urgent-refresh")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(URGENT_REFRESH)
            try:
                await self.refresh_urgent()
            except Exception:  # a locked or busy database: try again next time
                log.warning("could not read the outbox for /healthz", exc_info=True)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    @property
    def reader(self) -> Database:
        return self._reader or self.rt.db

    # ------------------------------------------------------------------ events
    def on_poll_ok(self) -> None:
        self.last_poll_ok = self.rt.now()

    async def on_tick(self, now: datetime) -> None:
        self.last_tick = now
        try:
            await self.refresh_urgent()
        except Exception:
            log.warning("could not read the outbox for /healthz", exc_info=True)
        polled = self.last_poll_ok
        if polled is None:
            return
        if self._persisted is not None and polled - self._persisted < PERSIST_EVERY:
            return
        try:
            async with self.rt.db.transaction() as conn:
                await repo.meta_set(conn, LAST_POLL_KEY, iso(polled))
            self._persisted = polled
        except Exception:  # never stop the other tick duties
            log.exception("could not record the last poll time")

    async def next_wake(self, now: datetime) -> datetime:
        """A tick every minute: the poll time reaches the database, the heartbeat beats."""
        return now + PERSIST_EVERY

    # ------------------------------------------------------------------ reading
    async def oldest_urgent(self) -> datetime | None:
        value = await delivery_store.oldest_queued_at(self.reader.conn, int(Priority.URGENT))
        return from_iso(value) if value else None

    async def refresh_urgent(self) -> None:
        self._urgent = await self.oldest_urgent()
        self._urgent_known = True

    async def health(self) -> Health:
        if not self._urgent_known:
            await self.refresh_urgent()
        now = self.rt.now()
        polled = self.last_poll_ok or self.started
        polling_age = max(0.0, (now - polled).total_seconds())
        urgent = self._urgent
        urgent_age = None if urgent is None else max(0.0, (now - urgent).total_seconds())
        problems = []
        if polling_age > POLL_STALE.total_seconds():
            problems.append(f"no successful getUpdates for {int(polling_age)} s")
        if urgent_age is not None and urgent_age > URGENT_STALE.total_seconds():
            problems.append(f"an urgent message has been queued for {int(urgent_age)} s")
        return Health(
            ok=not problems,
            problems=problems,
            now=now,
            polling_age_seconds=polling_age,
            last_poll_ok=self.last_poll_ok,
            oldest_urgent_seconds=urgent_age,
            last_tick=self.last_tick,
        )

    async def snapshot(self) -> Snapshot:
        """The `diarybot status` numbers, read through our own connection."""
        return await snapshot(self.reader, self.rt.now(), since=False)
