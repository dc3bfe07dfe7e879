"""Rows of study_versions and the option codes stored answers use (migration 0012)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.clock import iso

CURRENT_KEY = "study_version"  # meta: the version the running bot asks under


@dataclass(frozen=True)
class StudyVersion:
    version: int
    sha256: str
    study_id: str
    source: str
    content: str | None
    first_seen_at: str


def _version(row: aiosqlite.Row) -> StudyVersion:
    return StudyVersion(
        row["version"],
        row["sha256"],
        row["study_id"],
        row["source"],
        row["content"],
        row["first_seen_at"],
    )


async def all_versions(conn: aiosqlite.Connection) -> list[StudyVersion]:
    async with conn.execute("SELECT * FROM study_versions ORDER BY version") as cur:
        return [_version(r) for r in await cur.fetchall()]


async def by_hash(conn: aiosqlite.Connection, sha256: str) -> StudyVersion | None:
    async with conn.execute("SELECT * FROM study_versions WHERE sha256 = ?", (sha256,)) as cur:
        row = await cur.fetchone()
    return _version(row) if row else None


async def current(conn: aiosqlite.Connection) -> int | None:
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (CURRENT_KEY,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else None


async def set_current(conn: aiosqlite.Connection, version: int) -> None:
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (CURRENT_KEY, str(version)),
    )


async def insert(
    conn: aiosqlite.Connection,
    sha256: str,
    study_id: str,
    source: str,
    content: str | None,
    now: datetime,
) -> int:
    cur = await conn.execute(
        "INSERT INTO study_versions (sha256, study_id, source, content, first_seen_at)"
        " VALUES (?,?,?,?,?)",
        (sha256, study_id, source, content, iso(now)),
    )
    return cur.lastrowid or 0


async def stamp_unversioned(conn: aiosqlite.Connection, version: int) -> None:
    """Answers and submitted diaries stored before versioning belong to the first version."""
    await conn.execute(
        "UPDATE answers SET study_version = ? WHERE study_version IS NULL", (version,)
    )
    await conn.execute(
        "UPDATE occurrences SET study_version = ? WHERE study_version IS NULL"
        " AND status = 'completed'",
        (version,),
    )


async def stored_values(conn: aiosqlite.Connection) -> list[tuple[str, str, int]]:
    """(item, value, how many answers) of every distinct stored answer."""
    async with conn.execute(
        "SELECT item, value, COUNT(*) FROM answers GROUP BY item, value ORDER BY item, value"
    ) as cur:
        return [(r[0], r[1], r[2]) for r in await cur.fetchall()]
