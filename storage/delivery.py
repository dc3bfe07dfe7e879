"""Delivery and operations reads and writes: the operator's snapshot of the outbox
(bot/delivery/status.py), outbox retention (bot/delivery/retention.py), patients becoming
reachable again (bot/delivery/reachability.py) and the health checks (bot/ops/monitor.py,
bot/ops/watchdog.py). The Telegram sender's own outbox queries are in storage/outbox.py."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.clock import iso
from storage.db import Database
from storage.repo import _all, _one

# ---------------------------------------------------------------- the status snapshot


async def queued_due_by_priority(
    conn: aiosqlite.Connection, now: datetime
) -> list[tuple[int, int]]:
    """(priority, count) of queued rows due by `now`."""
    rows = await _all(
        conn,
        "SELECT priority, COUNT(*) FROM outbox WHERE status = 'queued' AND not_before <= ?"
        " GROUP BY priority",
        (iso(now),),
    )
    return [(r[0], r[1]) for r in rows]


async def parked_by_priority(conn: aiosqlite.Connection, now: datetime) -> list[tuple[int, int]]:
    """(priority, count) of queued rows waiting for a later retry, by priority."""
    rows = await _all(
        conn,
        "SELECT priority, COUNT(*) FROM outbox WHERE status = 'queued' AND not_before > ?"
        " GROUP BY priority ORDER BY priority",
        (iso(now),),
    )
    return [(r[0], r[1]) for r in rows]


async def oldest_queued(conn: aiosqlite.Connection) -> tuple[str, int] | None:
    """(created_at, priority) of the oldest queued row, if any."""
    row = await _one(
        conn,
        "SELECT created_at, priority FROM outbox WHERE status = 'queued' ORDER BY id LIMIT 1",
        (),
    )
    return (row["created_at"], row["priority"]) if row else None


async def failed_since(conn: aiosqlite.Connection, since: datetime) -> int:
    """Rows that failed for good at or after `since`."""
    row = await _one(
        conn,
        "SELECT COUNT(*) FROM outbox WHERE status = 'failed' AND sent_at >= ?",
        (iso(since),),
    )
    return int((row[0] if row else None) or 0)


async def sent_since(conn: aiosqlite.Connection, since: datetime) -> int:
    """Rows sent at or after `since`."""
    row = await _one(
        conn,
        "SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND sent_at >= ?",
        (iso(since),),
    )
    return int((row[0] if row else None) or 0)


async def unreachable_patients(
    conn: aiosqlite.Connection, *, since: bool = True
) -> list[tuple[str, str | None]]:
    """(subject, since) of the patients marked unreachable, by subject. `since`: when the
    latest `unreachable` audit entry was written (an audit scan), else None."""
    since_sql = (
        "(SELECT MAX(a.at) FROM audit a WHERE a.subject = p.subject AND a.action = 'unreachable')"
        if since
        else "NULL"
    )
    rows = await _all(
        conn,
        f"SELECT p.subject, {since_sql} FROM patients p WHERE p.unreachable = 1 ORDER BY p.subject",
    )
    return [(r[0], r[1]) for r in rows]


async def last_update_id(conn: aiosqlite.Connection) -> str | None:
    """The last Telegram update processed (`meta`), as stored."""
    row = await _one(conn, "SELECT value FROM meta WHERE key = 'last_update_id'", ())
    return None if row is None else row[0]


async def open_alerts(conn: aiosqlite.Connection) -> dict[str, int] | None:
    """Open alerts by level, if the escalation feature's table exists (migration 0002);
    {"all": n} on an alerts table without levels; None without an alerts table."""
    exists = await _one(
        conn, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'alerts'", ()
    )
    if not (exists and exists[0]):
        return None
    columns = {r[1] for r in await _all(conn, "PRAGMA table_info(alerts)")}
    if "status" not in columns:
        return None
    if "level" not in columns:
        total = await _one(conn, "SELECT COUNT(*) FROM alerts WHERE status = 'open'", ())
        return {"all": int((total[0] if total else None) or 0)}
    rows = await _all(
        conn,
        "SELECT level, COUNT(*) FROM alerts WHERE status = 'open' GROUP BY level ORDER BY level",
    )
    return {str(r[0]): int(r[1]) for r in rows}


# ---------------------------------------------------------------- retention

# What a sent row keeps: everything but the words and the file (bot/delivery/retention.py).
PRUNED_PAYLOAD = "json_remove(payload, '$.text', '$.buttons', '$.caption', '$.data')"


async def prune_sent(
    conn: aiosqlite.Connection, now: datetime, before: datetime, limit: int
) -> int:
    """Strip the text of up to `limit` rows sent before `before` (oldest first), marking them
    pruned at `now`; how many were stripped."""
    cur = await conn.execute(
        f"UPDATE outbox SET payload = {PRUNED_PAYLOAD}, pruned_at = ? WHERE id IN ("
        " SELECT id FROM outbox WHERE status = 'sent' AND pruned_at IS NULL AND sent_at < ?"
        " ORDER BY sent_at LIMIT ?)",
        (iso(now), iso(before), limit),
    )
    return cur.rowcount


# ---------------------------------------------------------------- reachability


async def unreachable_patient_id(
    conn: aiosqlite.Connection, user_id: int, chat_id: int
) -> int | None:
    """The id of the patient with this Telegram user and chat, if marked unreachable."""
    row = await _one(
        conn,
        "SELECT id FROM patients WHERE user_id = ? AND chat_id = ? AND unreachable = 1",
        (user_id, chat_id),
    )
    return None if row is None else int(row["id"])


async def clear_unreachable(conn: aiosqlite.Connection, patient_id: int) -> str | None:
    """Clear the patient's `unreachable` flag; their subject, or None if it was not set."""
    cur = await conn.execute(
        "UPDATE patients SET unreachable = 0 WHERE id = ? AND unreachable = 1 RETURNING subject",
        (patient_id,),
    )
    found = await cur.fetchone()
    return None if found is None else str(found[0])


async def unreachable_chats(conn: aiosqlite.Connection) -> set[int]:
    """The chats of the patients marked unreachable."""
    rows = await _all(
        conn, "SELECT chat_id FROM patients WHERE unreachable = 1 AND chat_id IS NOT NULL"
    )
    return {int(r[0]) for r in rows}


# ---------------------------------------------------------------- health checks


async def queued_of_priority(conn: aiosqlite.Connection, priority: int) -> tuple[str | None, int]:
    """(created_at of the oldest, count) of queued rows of this priority."""
    row = await _one(
        conn,
        "SELECT MIN(created_at), COUNT(*) FROM outbox WHERE status = 'queued' AND priority = ?",
        (priority,),
    )
    return (row[0], int(row[1])) if row else (None, 0)


async def oldest_queued_at(conn: aiosqlite.Connection, priority: int) -> str | None:
    """created_at of the oldest queued row of this priority, if any."""
    row = await _one(
        conn,
        "SELECT MIN(created_at) FROM outbox WHERE status = 'queued' AND priority = ?",
        (priority,),
    )
    return None if row is None else row[0]


async def open_reader(uri: str, path: str) -> Database:
    """A read-only connection of its own (`uri`: `file:…?mode=ro`): a health check never
    queues behind the bot's writes on the shared connection (WAL lets readers run beside the
    writer)."""
    conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute("PRAGMA busy_timeout=2000")
    return Database(conn, path)
