"""After N diaries missed in a row (study: `missed_in_a_row_alert`, default 3) tell the team once.

A run of misses is the missed diaries since the patient's last completed one (paused days do not
break or extend it, as in `domain.compliance`). The run is identified by its first missed diary,
so the team hears once per run however long it grows, and again only after the patient has
completed a diary and then missed N more. The event is stored (table `compliance_events`) and
audited in the same transaction; the escalation feature routes it to staff when it is present.

Cheap on every tick: only patients with a diary that closed missed since the last check are
looked at (a durable cursor in `meta`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import aiosqlite

from bot.clock import from_iso, iso
from bot.services.runtime import Runtime
from storage import audit, repo
from storage import followup as store

log = logging.getLogger(__name__)

CURSOR = "followup.missed_checked_until"
# Only diaries that opened in this span before the cursor can have closed after it: longer
# than any diary window (the weekly one is 72 h), so the (status, opens_at) index bounds the scan.
MAX_WINDOW = timedelta(days=8)

# Called inside the transaction that records a new event: (conn, now, patient, missed, event_id).
Router = Callable[[aiosqlite.Connection, datetime, repo.Patient, int, int], Awaitable[bool]]


async def missed_run_days(conn: aiosqlite.Connection, patient_id: int) -> list[tuple[str, int]]:
    """(key, study_day) of the missed diaries since the last completed one, oldest first."""
    return await repo.missed_since_completed(conn, patient_id)


async def missed_run(conn: aiosqlite.Connection, patient_id: int) -> list[str]:
    """Keys of the missed diaries since the last completed one, oldest first."""
    return [key for key, _ in await missed_run_days(conn, patient_id)]


async def check(rt: Runtime, now: datetime, routers: list[Router] | None = None) -> int:
    """Record a compliance event for each new run that reached the threshold. Returns how many."""
    threshold = rt.study.missed_in_a_row_alert
    cursor = await repo.meta_get(rt.db.conn, CURSOR)
    opened_after = iso(from_iso(cursor) - MAX_WINDOW) if cursor else ""
    patient_ids = await store.patients_missed_between(rt.db.conn, opened_after, cursor or "", now)
    if not patient_ids:
        return 0
    raised = 0
    async with rt.db.transaction() as conn:
        for patient_id in patient_ids:
            run = await missed_run(conn, patient_id)
            if len(run) < threshold:
                continue
            event_id = await store.insert_missed_run(conn, patient_id, run[0], len(run), now)
            if event_id is None:
                continue  # this run was already reported
            patient = await repo.patient_by_id(conn, patient_id)
            assert patient is not None
            routed = False
            for route in routers or []:
                routed = await route(conn, now, patient, len(run), event_id) or routed
            if routed:
                await store.mark_compliance_routed(conn, event_id)
            await audit.record(
                conn,
                now,
                "system",
                "compliance_missed_in_a_row",
                subject=patient.subject,
                entity=run[0],
                new={"missed_in_a_row": len(run), "routed": routed},
            )
            raised += 1
        await repo.meta_set(conn, CURSOR, iso(now))
    return raised
