"""The follow-up's two touch points with the escalation feature (bot/escalation).

- A new "missed N in a row" event (bot/followup/compliance_watch.py decides when a run is new)
  becomes a compliance alert through `escalation.service.raise_compliance`, inside the same
  transaction that records the event, so the team is told once per run.
- The digest lists unacknowledged review alerts with `escalation.service.open_alerts`.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.escalation import service
from bot.escalation.compliance import MISSED_REASON
from bot.escalation.views import MISSED
from bot.followup import compliance_watch
from bot.services.runtime import Runtime
from storage import repo


def compliance_router(rt: Runtime) -> compliance_watch.Router:
    async def route(
        conn: aiosqlite.Connection, now: datetime, patient: repo.Patient, missed: int, event: int
    ) -> bool:
        run = await compliance_watch.missed_run_days(conn, patient.id)
        details = {
            "run_start": run[0][0],
            "through": run[-1][0],
            "count": len(run),
            "days": [day for _key, day in run],
        }
        await service.raise_compliance(rt, conn, patient, MISSED, MISSED_REASON, details)
        return True

    return route


async def open_review_alerts(
    conn: aiosqlite.Connection, now: datetime
) -> list[tuple[str, str]] | None:
    """(subject, reason msgid) of every unacknowledged review alert, oldest first."""
    return [(a.subject, a.reason) for a in await service.open_alerts(conn, "review")]
