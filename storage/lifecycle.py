"""The writes behind the study team's controls over a follow-up (bot/followup/lifecycle.py):
a patient's status (paused, active, withdrawn, completed), their diaries' states, a new Day 0
and the recomputed diaries. Each runs inside the caller's transaction."""

from __future__ import annotations

from datetime import date, datetime

import aiosqlite

from bot.clock import iso


async def set_paused(conn: aiosqlite.Connection, patient_id: int) -> None:
    """The patient's status becomes `paused`."""
    await conn.execute("UPDATE patients SET status = 'paused' WHERE id = ?", (patient_id,))


async def set_active(conn: aiosqlite.Connection, patient_id: int) -> None:
    """The patient's status becomes `active`."""
    await conn.execute("UPDATE patients SET status = 'active' WHERE id = ?", (patient_id,))


async def set_withdrawn(conn: aiosqlite.Connection, patient_id: int) -> None:
    """The patient's status becomes `withdrawn`."""
    await conn.execute("UPDATE patients SET status = 'withdrawn' WHERE id = ?", (patient_id,))


async def set_completed(conn: aiosqlite.Connection, patient_id: int) -> None:
    """The patient's status becomes `completed` (the follow-up ended)."""
    await conn.execute("UPDATE patients SET status = 'completed' WHERE id = ?", (patient_id,))


async def set_injection_date(conn: aiosqlite.Connection, patient_id: int, day0: date) -> None:
    """Day 0 of the patient moves to `day0`."""
    await conn.execute(
        "UPDATE patients SET injection_date = ? WHERE id = ?",
        (day0.isoformat(), patient_id),
    )


async def pause_open_diaries(conn: aiosqlite.Connection, patient_id: int, now: datetime) -> int:
    """Every diary not yet completed whose window has not closed becomes `paused`; how many."""
    cur = await conn.execute(
        "UPDATE occurrences SET status = 'paused' WHERE patient_id = ?"
        " AND status IN ('scheduled', 'prompted', 'reminded') AND closes_at > ?",
        (patient_id, iso(now)),
    )
    return cur.rowcount


async def resume_paused_diaries(conn: aiosqlite.Connection, patient_id: int, now: datetime) -> int:
    """Paused diaries whose window has not closed come back; how many.

    A diary that was prompted before the pause comes back as it was; if its reminder time has
    passed it counts as reminded (the resume notice is reminder enough). A diary closed
    incomplete by the pause stays closed.
    """
    n = iso(now)
    cur = await conn.execute(
        "UPDATE occurrences SET status = CASE"
        " WHEN prompted_at IS NULL THEN 'scheduled'"
        " WHEN reminded_at IS NOT NULL OR remind_at <= ? THEN 'reminded'"
        " ELSE 'prompted' END"
        " WHERE patient_id = ? AND status = 'paused' AND closes_at > ?"
        " AND incomplete_at IS NULL",  # a diary closed incomplete by the pause stays closed
        (n, patient_id, n),
    )
    return cur.rowcount


async def withdraw_open_diaries(conn: aiosqlite.Connection, patient_id: int, now: datetime) -> int:
    """Open, future and paused diaries whose window has not closed become `withdrawn`; how
    many."""
    cur = await conn.execute(
        "UPDATE occurrences SET status = 'withdrawn' WHERE patient_id = ?"
        " AND status IN ('scheduled', 'prompted', 'reminded', 'paused') AND closes_at > ?",
        (patient_id, iso(now)),
    )
    return cur.rowcount


async def pause_future_scheduled(
    conn: aiosqlite.Connection, patient_id: int, now: datetime
) -> None:
    """Scheduled diaries that open after `now` become `paused` (a paused patient re-anchored)."""
    await conn.execute(
        "UPDATE occurrences SET status = 'paused' WHERE patient_id = ?"
        " AND status = 'scheduled' AND opens_at > ?",
        (patient_id, iso(now)),
    )


async def end_diary_session(conn: aiosqlite.Connection, patient_id: int) -> None:
    """Forget the patient's place in a diary they were filling in (`diary_sessions`)."""
    await conn.execute("DELETE FROM diary_sessions WHERE patient_id = ?", (patient_id,))


async def delete_occurrences(conn: aiosqlite.Connection, ids: list[int]) -> None:
    """Delete these diaries (future, untouched ones replaced by a re-anchor)."""
    await conn.executemany("DELETE FROM occurrences WHERE id = ?", [(i,) for i in ids])


async def rekey_occurrences(conn: aiosqlite.Connection, changes: list[tuple[str, int]]) -> None:
    """Give diaries new keys: (new key, occurrence id) pairs."""
    await conn.executemany("UPDATE occurrences SET key = ? WHERE id = ?", changes)
