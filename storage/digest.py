"""The coordinator digest's queries (bot/followup/digest.py): what happened, and which days'
digests went out (`digest_runs`)."""

from __future__ import annotations

from datetime import date, datetime

import aiosqlite

from bot.clock import from_iso, iso
from storage.repo import _all, _one


async def sent(conn: aiosqlite.Connection, day: date) -> bool:
    """Whether the digest of this study-local day has gone out."""
    row = await _one(conn, "SELECT 1 FROM digest_runs WHERE local_date = ?", (day.isoformat(),))
    return row is not None


async def last_sent_at(conn: aiosqlite.Connection) -> datetime | None:
    """When the latest digest went out, if one ever did."""
    last = await _one(conn, "SELECT MAX(sent_at) FROM digest_runs", ())
    return from_iso(last[0]) if last and last[0] else None


async def record_run(
    conn: aiosqlite.Connection, day: date, now: datetime, recipients: int, quiet: bool
) -> None:
    """The digest of `day` went out at `now` (in the transaction that queued it)."""
    await conn.execute(
        "INSERT INTO digest_runs (local_date, sent_at, recipients, quiet) VALUES (?,?,?,?)",
        (day.isoformat(), iso(now), recipients, int(quiet)),
    )


async def diaries_opened(
    conn: aiosqlite.Connection, after: datetime, until: datetime
) -> list[aiosqlite.Row]:
    """Diaries (completed, missed or still open) that opened in (`after`, `until`], by subject:
    subject, timezone, local_date, status."""
    return await _all(
        conn,
        "SELECT p.subject, p.timezone, o.local_date, o.status FROM occurrences o"
        " JOIN patients p ON p.id = o.patient_id"
        " WHERE o.status IN ('completed', 'missed', 'scheduled', 'prompted', 'reminded')"
        " AND o.opens_at > ? AND o.opens_at <= ? ORDER BY p.subject",
        (iso(after), iso(until)),
    )


async def missed_runs(conn: aiosqlite.Connection, threshold: int) -> list[tuple[str, int]]:
    """(subject, misses) of active patients with `threshold` or more diaries missed since their
    last completed one, by subject."""
    runs = await _all(
        conn,
        "SELECT p.subject, COUNT(*) FROM occurrences o JOIN patients p ON p.id = o.patient_id"
        " WHERE p.status = 'active' AND o.status = 'missed' AND o.opens_at > COALESCE("
        " (SELECT MAX(c.opens_at) FROM occurrences c WHERE c.patient_id = o.patient_id"
        " AND c.status = 'completed'), '') GROUP BY p.id HAVING COUNT(*) >= ? ORDER BY p.subject",
        (threshold,),
    )
    return [(r[0], r[1]) for r in runs]


async def followed_patients(conn: aiosqlite.Connection) -> list[aiosqlite.Row]:
    """Active and paused patients (whose visits are still planned), by subject: subject,
    injection_date, timezone."""
    return await _all(
        conn,
        "SELECT subject, injection_date, timezone FROM patients"
        " WHERE status IN ('active', 'paused') ORDER BY subject",
    )


async def enrolled_between(
    conn: aiosqlite.Connection, since: datetime, until: datetime
) -> list[str]:
    """Subjects of the patients enrolled in (`since`, `until`], sorted."""
    new = await _all(
        conn,
        "SELECT subject FROM patients WHERE created_at > ? AND created_at <= ? ORDER BY subject",
        (iso(since), iso(until)),
    )
    return [r[0] for r in new]
