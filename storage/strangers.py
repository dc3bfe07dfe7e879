"""What strangers (neither enrolled patients nor active staff) tried, counted per person and hour.

An audit entry per refused command or wrong code would let one stranger grow the audit trail
without bound. Instead each attempt adds one to a counter row; once the hour is over `flush`
writes ONE audit entry per stranger and hour (`stranger_activity`, the counts by action) and
deletes the counters. Updates dropped by the inbound flood limit write nothing at all; their
count (kept in memory) is added to that entry when the hour is flushed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import aiosqlite

from bot.clock import from_iso, iso
from storage import audit


def hour_of(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def is_stranger(conn: aiosqlite.Connection, user_id: int) -> bool:
    """Neither a linked patient nor an active staff member (two indexed lookups)."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT 1 FROM patients WHERE user_id = :u"
            " UNION ALL SELECT 1 FROM staff WHERE telegram_id = :u AND active = 1 LIMIT 1",
            {"u": user_id},
        )
    )
    return not rows


async def pending_before(conn: aiosqlite.Connection, hour: datetime) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM stranger_activity WHERE hour < ? LIMIT 1", (iso(hour),)
    )
    return bool(list(rows))


async def pending_count(conn: aiosqlite.Connection) -> int:
    """How many counter rows wait to be flushed (any hour)."""
    rows = list(await conn.execute_fetchall("SELECT COUNT(*) FROM stranger_activity"))
    return int(rows[0][0]) if rows else 0


async def note(conn: aiosqlite.Connection, now: datetime, user_id: int, action: str) -> None:
    """Count one attempt of `action` by stranger `user_id` in the current hour (inside a
    transaction, instead of an audit entry)."""
    await conn.execute(
        "INSERT INTO stranger_activity (user_id, hour, action, count) VALUES (?,?,?,1)"
        " ON CONFLICT (user_id, hour, action) DO UPDATE SET count = count + 1",
        (user_id, iso(hour_of(now)), action[:100]),
    )


async def flush(
    conn: aiosqlite.Connection,
    now: datetime,
    dropped: Mapping[tuple[int, datetime], int] | None = None,
) -> list[tuple[int, datetime]]:
    """One audit entry per stranger and finished hour; returns the (user, hour) pairs written.

    `dropped`: updates dropped by the flood limit per (user, hour); only strangers' counts are
    written (a patient's or staff member's fast tapping is not an audit event).
    """
    current = hour_of(now)
    counts: dict[tuple[int, str], dict[str, int]] = {}
    rows = await conn.execute_fetchall(
        "SELECT user_id, hour, action, count FROM stranger_activity WHERE hour < ?"
        " ORDER BY user_id, hour, action",
        (iso(current),),
    )
    for user_id, hour, action, count in rows:
        counts.setdefault((int(user_id), str(hour)), {})[str(action)] = int(count)
    for (user_id, hour_start), count in (dropped or {}).items():
        if hour_start >= current or count <= 0:
            continue
        key = (user_id, iso(hour_start))
        if key not in counts and not await is_stranger(conn, user_id):
            continue
        counts.setdefault(key, {})["dropped (flood limit)"] = count
    written = []
    for (user_id, hour), actions in sorted(counts.items()):
        await audit.record(
            conn,
            now,
            f"user:{user_id}",
            "stranger_activity",
            entity=hour,
            new=json.dumps(
                {"count": sum(actions.values()), "actions": actions}, ensure_ascii=False
            ),
        )
        written.append((user_id, from_iso(hour)))
    await conn.execute("DELETE FROM stranger_activity WHERE hour < ?", (iso(current),))
    return written


def next_flush(now: datetime) -> datetime:
    return hour_of(now) + timedelta(hours=1)
