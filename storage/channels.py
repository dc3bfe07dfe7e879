"""SQL for the non-Telegram outbox rows (bot/channels) and the one-time alert links."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiosqlite

from bot.clock import iso


async def insert(
    conn: aiosqlite.Connection,
    now: datetime,
    channel: str,
    destination: str,
    payload: dict[str, Any],
    priority: int,
    ref: str | None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO outbox (priority, chat_id, kind, payload, ref, not_before, created_at,"
        " channel, destination) VALUES (?, 0, 'send', ?, ?, ?, ?, ?, ?)",
        (
            priority,
            json.dumps(payload, ensure_ascii=False),
            ref,
            iso(now),
            iso(now),
            channel,
            destination,
        ),
    )
    return cur.lastrowid or 0


async def heads(
    conn: aiosqlite.Connection, channel: str, now: datetime, busy: list[int], limit: int
) -> list[aiosqlite.Row]:
    """Queued rows of one channel that are due, most urgent first, minus those in flight."""
    rows = await conn.execute_fetchall(
        "SELECT id, channel, priority, destination, payload, attempts FROM outbox"
        " WHERE channel = :channel AND status = 'queued' AND not_before <= :now"
        " AND id NOT IN (SELECT value FROM json_each(:busy))"
        " ORDER BY priority, id LIMIT :limit",
        {"channel": channel, "now": iso(now), "busy": json.dumps(busy), "limit": limit},
    )
    return list(rows)


async def next_due(conn: aiosqlite.Connection, channel: str, now: datetime) -> str | None:
    row = await (
        await conn.execute(
            "SELECT MIN(not_before) FROM outbox WHERE channel = ? AND status = 'queued'"
            " AND not_before > ?",
            (channel, iso(now)),
        )
    ).fetchone()
    return row[0] if row else None


async def finish(
    conn: aiosqlite.Connection, row_id: int, now: datetime, status: str, error: str | None
) -> None:
    # A row marked secret (a personal web link) forgets its text once it is out of our hands:
    # the link then exists only on the patient's phone and as a hash here.
    await conn.execute(
        "UPDATE outbox SET status = ?, sent_at = ?, last_error = ?, attempts = attempts + 1,"
        " payload = CASE WHEN json_extract(payload, '$.secret') THEN '{\"secret\": true}'"
        " ELSE payload END"
        " WHERE id = ? AND status = 'queued'",
        (status, iso(now), error, row_id),
    )


async def failed_attempt(
    conn: aiosqlite.Connection, row_id: int, error: str, not_before: datetime
) -> None:
    await conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, not_before = ?"
        " WHERE id = ? AND status = 'queued'",
        (error, iso(not_before), row_id),
    )


async def queued_due(conn: aiosqlite.Connection, channels: list[str], now: datetime) -> int:
    row = await (
        await conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE status = 'queued' AND not_before <= ?"
            " AND channel IN (SELECT value FROM json_each(?))",
            (iso(now), json.dumps(channels)),
        )
    ).fetchone()
    return int(row[0]) if row else 0


async def patient_row(conn: aiosqlite.Connection, patient_id: int) -> aiosqlite.Row | None:
    """The whole patients row (with `channel` and `phone` once the web diary adds them)."""
    cur = await conn.execute("SELECT * FROM patients WHERE id = ?", (patient_id,))
    return await cur.fetchone()


# --------------------------------------------------------------------------- alert links


async def add_link(
    conn: aiosqlite.Connection,
    *,
    nonce: str,
    alert_id: int,
    route: str,
    staff_id: int | None,
    recipient: str,
    lang: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO alert_links (nonce, alert_id, route, staff_id, recipient, lang, created_at,"
        " expires_at) VALUES (?,?,?,?,?,?,?,?)",
        (nonce, alert_id, route, staff_id, recipient, lang, iso(now), iso(expires_at)),
    )


async def link(conn: aiosqlite.Connection, nonce: str) -> aiosqlite.Row | None:
    cur = await conn.execute("SELECT * FROM alert_links WHERE nonce = ?", (nonce,))
    return await cur.fetchone()


async def use_link(conn: aiosqlite.Connection, nonce: str, now: datetime) -> bool:
    """Marks the link used; False if it already was (a replay)."""
    cur = await conn.execute(
        "UPDATE alert_links SET used_at = ? WHERE nonce = ? AND used_at IS NULL", (iso(now), nonce)
    )
    return bool(cur.rowcount)
