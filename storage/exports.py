"""The reads behind exports and charts (`bot/dataout/dataset.py`), on a read-only snapshot.

Every query here runs on the connection `snapshot` opens: a separate read-only connection inside
one read transaction, so an export sees one consistent state of the WAL database while the bot
keeps writing. Privacy is decided by the caller; these reads never touch Telegram chat or user
ids, staff names or enrolment codes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path

import aiosqlite

from bot.clock import iso


def _read_only_uri(path: str | Path) -> str:
    return f"{Path(os.path.abspath(path)).as_uri()}?mode=ro"


@contextlib.asynccontextmanager
async def snapshot(path: str | Path) -> AsyncIterator[aiosqlite.Connection]:
    """A read-only connection inside one read transaction: a consistent view of the database."""
    conn = await aiosqlite.connect(_read_only_uri(path), uri=True, isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA query_only=ON")
        await conn.execute("BEGIN")
        try:
            yield conn
        finally:
            await conn.execute("ROLLBACK")
    finally:
        await conn.close()


async def _all(
    conn: aiosqlite.Connection, sql: str, params: tuple[object, ...] = ()
) -> list[aiosqlite.Row]:
    async with conn.execute(sql, params) as cur:
        return list(await cur.fetchall())


async def table_exists(conn: aiosqlite.Connection, name: str) -> bool:
    """Whether the database has this table (a file from before its migration has not)."""
    rows = await _all(
        conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    )
    return bool(rows)


async def has_incomplete_diaries(conn: aiosqlite.Connection) -> bool:
    """Whether occurrences record incomplete diaries (`incomplete_at`, migration 0007)."""
    return bool(
        await _all(
            conn, "SELECT 1 FROM pragma_table_info('occurrences') WHERE name = 'incomplete_at'"
        )
    )


async def staff_roles(conn: aiosqlite.Connection) -> list[tuple[int, str]]:
    """(telegram_id, role) of every staff member ever added, in the order they were added."""
    rows = await _all(conn, "SELECT telegram_id, role FROM staff ORDER BY created_at, telegram_id")
    return [(r["telegram_id"], r["role"]) for r in rows]


async def patients(conn: aiosqlite.Connection, subject: str | None = None) -> list[aiosqlite.Row]:
    """id, subject, injection_date, timezone, status, lang of every (or one) patient, by subject."""
    params: tuple[object, ...] = ()
    where = ""
    if subject is not None:
        where, params = " WHERE subject = ?", (subject,)
    return await _all(
        conn,
        "SELECT id, subject, injection_date, timezone, status, lang FROM patients"
        f"{where} ORDER BY subject",
        params,
    )


async def opened_occurrences(
    conn: aiosqlite.Connection,
    patient_id: int,
    now: datetime,
    since: date | None,
    versioned: bool,
    incomplete: bool,
) -> list[aiosqlite.Row]:
    """The patient's diaries whose window has opened (or that were completed), local date on or
    after `since`, by study day: id, key, phase, form, study_day, local_date, status,
    submitted_at, study_version (NULL unless `versioned`), incomplete_at (NULL unless
    `incomplete`)."""
    return await _all(
        conn,
        "SELECT id, key, phase, form, study_day, local_date, status, submitted_at,"
        f" {'study_version' if versioned else 'NULL'} AS study_version,"
        f" {'incomplete_at' if incomplete else 'NULL'} AS incomplete_at FROM occurrences"
        " WHERE patient_id = ? AND (opens_at <= ? OR status = 'completed')"
        " AND local_date >= ? ORDER BY study_day, opens_at",
        (patient_id, iso(now), since.isoformat() if since else ""),  # "" precedes every date
    )


async def data_answers(
    conn: aiosqlite.Connection, patient_id: int, incomplete: bool
) -> list[aiosqlite.Row]:
    """The patient's answers that are data: submitted ones, and (with `incomplete`) those of a
    diary that closed unsubmitted. occurrence_id, item, value, answered_at, submitted_at."""
    return await _all(
        conn,
        "SELECT a.occurrence_id, a.item, a.value, a.answered_at, a.submitted_at"
        " FROM answers a JOIN occurrences o ON o.id = a.occurrence_id"
        " WHERE o.patient_id = ? AND (a.submitted_at IS NOT NULL"
        f"{' OR o.incomplete_at IS NOT NULL' if incomplete else ''})",
        (patient_id,),
    )


async def subject_audit(conn: aiosqlite.Connection, subject: str) -> list[aiosqlite.Row]:
    """The subject's audit entries about an entity (a diary or one of its items), oldest first."""
    return await _all(
        conn,
        "SELECT * FROM audit WHERE subject = ? AND entity IS NOT NULL ORDER BY id",
        (subject,),
    )


async def alert_days(conn: aiosqlite.Connection, patient_id: int) -> list[tuple[int, str]]:
    """(study day, level) of the patient's alerts that name a study day, by study day."""
    rows = await _all(
        conn,
        "SELECT study_day, level FROM alerts WHERE patient_id = ? AND study_day IS NOT NULL"
        " ORDER BY study_day",
        (patient_id,),
    )
    return [(r["study_day"], r["level"]) for r in rows]
