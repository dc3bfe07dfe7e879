"""A health line in the log every few minutes: queue, failures, unreachable, open alerts.

Driven by the scheduler's tick, so it follows the injected clock like everything else and needs
no task of its own. No wake hook: the scheduler ticks at least every 5 minutes (its safety net),
and a wake hook would make the sandbox's time travel stop every 5 minutes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.delivery.status import health_line, snapshot
from bot.sender import Sender
from bot.services.runtime import Runtime

log = logging.getLogger("bot.health")

HEALTH_EVERY = timedelta(minutes=5)


class HealthLog:
    def __init__(self, rt: Runtime, sender: Sender, every: timedelta = HEALTH_EVERY) -> None:
        self.rt = rt
        self.sender = sender
        self.every = every
        self.last: datetime | None = None
        self.lines = 0

    async def on_tick(self, now: datetime) -> None:
        if self.last is not None and now - self.last < self.every:
            return
        self.last = now
        try:
            snap = await snapshot(self.rt.db, now, since=False)
        except Exception:  # a health line must never stop the other tick duties
            log.exception("health snapshot failed")
            return
        self.lines += 1
        log.info("%s", health_line(snap, dict(self.sender.stats)))
