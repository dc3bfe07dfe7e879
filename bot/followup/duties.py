"""The 24-month follow-up's scheduler duties, run by `FollowUp.on_tick` (wired in by
bot/followup/feature.py).

Each tick, in this order: keep visit reminders and the closing message in step with each
patient's anchor; send what has come due; record "missed N in a row" events; send the
coordinator digest once a day. `next_wake` tells the scheduler when the next one is due.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.followup import compliance_watch, digest, events
from bot.services.runtime import Runtime

log = logging.getLogger("bot.followup.feature")  # the name these duties have always logged as

RETRY = timedelta(minutes=1)


class FollowUp:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # Routes a new compliance event to the team (filled by the escalation hookup).
        self.compliance_routers: list[compliance_watch.Router] = []
        self.alert_counter: digest.AlertCounter | None = None
        self.failures = 0

    async def on_tick(self, now: datetime) -> None:
        """One failing duty must not stop the others (nor other features' hooks)."""
        for name, duty in (
            ("plans", self._plans),
            ("events", self._events),
            ("compliance", self._compliance),
            ("digest", self._digest),
        ):
            try:
                await duty(now)
            except Exception:
                self.failures += 1
                log.exception("follow-up duty %s failed", name)

    async def _plans(self, now: datetime) -> None:
        await events.sync_plans(self.rt, now)

    async def _events(self, now: datetime) -> None:
        await events.send_due(self.rt, now)

    async def _compliance(self, now: datetime) -> None:
        await compliance_watch.check(self.rt, now, self.compliance_routers)

    async def _digest(self, now: datetime) -> None:
        await digest.maybe_send(self.rt, now, self.alert_counter)

    async def next_wake(self, now: datetime) -> datetime | None:
        candidates = [await digest.next_time(self.rt, now)]
        due = await events.next_due(self.rt, now)
        if due is not None:
            candidates.append(due)
        when = min(candidates)
        # Something due now that was not done (a failing duty): try again shortly, not at once.
        return when if when > now else now + RETRY
