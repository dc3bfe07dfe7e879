"""The follow-up feature's queries: the planner (bot/followup/events.py: which patients' plans
are stale, which planned events (`followup_events`) have come due, and their writes), the staff
confirmations (`followup_confirmations`) and the compliance watch (`compliance_events`)."""

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


async def replace_plans(
    conn: aiosqlite.Connection,
    replanned: list[int],
    events: list[tuple[object, ...]],
    plans: list[tuple[int, str, str]],
) -> None:
    """Drop the pending events of the `replanned` patients, insert `events` (patient_id, key,
    kind, due_at, expires_at, data; a key already stored is kept) and upsert `plans`
    (patient_id, signature, updated_at). Batched; inside the caller's transaction."""
    await conn.executemany(
        "DELETE FROM followup_events WHERE patient_id = ? AND status = 'pending'",
        [(pid,) for pid in replanned],
    )
    await conn.executemany(
        "INSERT OR IGNORE INTO followup_events (patient_id, key, kind, due_at, expires_at, data)"
        " VALUES (?,?,?,?,?,?)",
        events,
    )
    await conn.executemany(
        "INSERT INTO followup_plans (patient_id, signature, updated_at) VALUES (?,?,?)"
        " ON CONFLICT (patient_id) DO UPDATE SET signature = excluded.signature,"
        " updated_at = excluded.updated_at",
        plans,
    )


async def cancel_pending_events(
    conn: aiosqlite.Connection, patient_id: int, now: datetime, *, keep_closing: bool = False
) -> int:
    """Cancel the patient's pending events (all, or all but the closing one); how many."""
    extra = " AND kind != 'closing'" if keep_closing else ""
    cur = await conn.execute(
        "UPDATE followup_events SET status = 'cancelled', done_at = ?"
        f" WHERE patient_id = ? AND status = 'pending'{extra}",
        (iso(now), patient_id),
    )
    return cur.rowcount


async def next_due_at(conn: aiosqlite.Connection, now: datetime) -> str | None:
    """When the earliest pending event after `now` is due (ISO), if any."""
    row = await _one(
        conn,
        "SELECT MIN(due_at) FROM followup_events WHERE status = 'pending' AND due_at > ?",
        (iso(now),),
    )
    return None if row is None else row[0]


async def any_due(conn: aiosqlite.Connection, now: datetime) -> bool:
    """Whether any pending event has come due by `now`: one indexed query."""
    row = await _one(
        conn,
        "SELECT EXISTS (SELECT 1 FROM followup_events WHERE status = 'pending' AND due_at <= ?)",
        (iso(now),),
    )
    return bool(row is not None and row[0])


async def finish_event(
    conn: aiosqlite.Connection, event_id: int, status: str, now: datetime
) -> None:
    """An event was handled: `status` (sent, skipped) at `now`."""
    await conn.execute(
        "UPDATE followup_events SET status = ?, done_at = ? WHERE id = ?",
        (status, iso(now), event_id),
    )


async def cancel_event(conn: aiosqlite.Connection, event_id: int, now: datetime) -> None:
    """One event will not be sent (its patient is no longer followed up)."""
    await conn.execute(
        "UPDATE followup_events SET status = 'cancelled', done_at = ? WHERE id = ?",
        (iso(now), event_id),
    )


async def insert_confirmation(
    conn: aiosqlite.Connection,
    staff_id: int,
    action: str,
    subject: str,
    argument: str | None,
    reason: str | None,
    now: datetime,
) -> int:
    """A staff command waiting for its Confirm button (`followup_confirmations`); its id."""
    cur = await conn.execute(
        "INSERT INTO followup_confirmations (staff_id, action, subject, argument, reason,"
        " created_at) VALUES (?,?,?,?,?,?)",
        (staff_id, action, subject, argument, reason, iso(now)),
    )
    return cur.lastrowid or 0


async def patients_missed_between(
    conn: aiosqlite.Connection, opened_after: str, closed_after: str, now: datetime
) -> list[int]:
    """Active patients with a diary that opened after `opened_after` (ISO, or "") and closed
    missed after `closed_after` (ISO, or "") and by `now`: whom the compliance watch checks."""
    rows = await _all(
        conn,
        "SELECT DISTINCT o.patient_id FROM occurrences o JOIN patients p ON p.id = o.patient_id"
        " WHERE o.status = 'missed' AND o.opens_at > ? AND o.closes_at > ? AND o.closes_at <= ?"
        " AND p.status = 'active'",
        (opened_after, closed_after, iso(now)),
    )
    return [r[0] for r in rows]


async def insert_missed_run(
    conn: aiosqlite.Connection, patient_id: int, run_start: str, missed: int, now: datetime
) -> int | None:
    """Record a run of `missed` diaries in a row starting at `run_start` (`compliance_events`).
    The new event's id, or None when this run was already recorded."""
    cur = await conn.execute(
        "INSERT OR IGNORE INTO compliance_events (patient_id, kind, run_start, missed,"
        " created_at) VALUES (?, 'missed_in_a_row', ?, ?, ?)",
        (patient_id, run_start, missed, iso(now)),
    )
    if not cur.rowcount:
        return None
    return cur.lastrowid or 0


async def mark_compliance_routed(conn: aiosqlite.Connection, event_id: int) -> None:
    """The escalation feature took the compliance event."""
    await conn.execute(
        "UPDATE compliance_events SET routed_to = 'escalation' WHERE id = ?",
        (event_id,),
    )
