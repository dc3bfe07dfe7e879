"""The follow-up planner's queries (bot/followup/events.py): which patients' plans are stale,
and which planned events (`followup_events`) have come due."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.clock import iso
from storage.repo import Patient, _all, _one

# What a patient's planned events depend on, over the stored patient row (ISO date, IANA name,
# HH:MM). Must equal bot.followup.plan.signature(injection_date, timezone, prompt_time).
SIGNATURE_SQL = "p.injection_date || '|' || p.timezone || '|' || p.prompt_time"

# Active or paused patients never planned, or planned for another anchor.
_STALE = (
    "FROM patients p LEFT JOIN followup_plans f ON f.patient_id = p.id"
    " WHERE p.status IN ('active', 'paused') AND (f.signature IS NULL"
    f" OR f.signature != {SIGNATURE_SQL})"
)


async def any_stale(conn: aiosqlite.Connection) -> bool:
    """Whether any active or paused patient needs (re-)planning: one indexed query."""
    return await _one(conn, f"SELECT 1 {_STALE} LIMIT 1", ()) is not None


async def stale_patients(
    conn: aiosqlite.Connection, after: int, limit: int
) -> list[tuple[Patient, bool]]:
    """The next `limit` patients (by id, above `after`) whose plan is stale, each with whether
    they had a plan before (then their pending rows are replaced)."""
    rows = await _all(
        conn,
        f"SELECT p.*, f.signature AS planned {_STALE} AND p.id > ? ORDER BY p.id LIMIT ?",
        (after, limit),
    )
    return [(Patient.from_row(r), r["planned"] is not None) for r in rows]


async def due_events(conn: aiosqlite.Connection, now: datetime) -> list[aiosqlite.Row]:
    """Pending follow-up events that have come due by `now`, oldest first."""
    return await _all(
        conn,
        "SELECT * FROM followup_events WHERE status = 'pending' AND due_at <= ?"
        " ORDER BY due_at, id",
        (iso(now),),
    )
