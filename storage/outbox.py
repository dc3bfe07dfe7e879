"""The Telegram sender's view of the outbox: which queued rows it may look at.

Every query that *selects* rows for the Telegram sender (`bot/sender.py`) is here, and each
one uses `TELEGRAM_ROWS` to say which rows are the sender's: the outbox also holds SMS, WeCom
and e-mail rows (migration 0014), drained by `bot/channels/dispatcher.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

import aiosqlite

from bot.clock import iso

#: The rows the Telegram sender owns (table alias `o`). Add the channel filter here.
TELEGRAM_ROWS = "o.status = 'queued' AND o.channel = 'telegram'"


async def telegram_due_heads(
    conn: aiosqlite.Connection, now: datetime, exclude_chats: Iterable[int], limit: int
) -> list[tuple[int, int, int]]:
    """(id, priority, chat_id) of queued rows due now, most urgent first.

    Leaves out the chats in `exclude_chats` (a send in flight, paused, pacing, or already looked
    at this round) and rows that must wait for an earlier row of their chat: a row waits while
    an earlier row of its chat (same or higher priority) is parked, so a late retry never
    overwrites a newer edit, and an edit of a message whose own row is still queued
    (`enqueue_edit_ref`) waits until that message is sent.
    """
    rows = await conn.execute_fetchall(
        "SELECT o.id, o.priority, o.chat_id FROM outbox o"
        f" WHERE {TELEGRAM_ROWS} AND o.not_before <= :now"
        " AND o.chat_id NOT IN (SELECT value FROM json_each(:busy))"
        " AND NOT EXISTS (SELECT 1 FROM outbox b WHERE b.status = 'queued'"
        "   AND b.chat_id = o.chat_id AND b.not_before > :now"
        "   AND (b.priority < o.priority OR (b.priority = o.priority AND b.id < o.id)))"
        " AND NOT (o.kind = 'edit' AND EXISTS (SELECT 1 FROM outbox t"
        "   WHERE t.ref = json_extract(o.payload, '$.edit_ref') AND t.chat_id = o.chat_id"
        "   AND t.kind = 'send' AND t.status = 'queued'))"
        " ORDER BY o.priority, o.id LIMIT :limit",
        {"now": iso(now), "busy": json.dumps(sorted(set(exclude_chats))), "limit": limit},
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def telegram_row(conn: aiosqlite.Connection, outbox_id: int) -> aiosqlite.Row | None:
    """The full row, if it is still queued for the Telegram sender."""
    rows = list(
        await conn.execute_fetchall(
            f"SELECT * FROM outbox o WHERE o.id = ? AND {TELEGRAM_ROWS}", (outbox_id,)
        )
    )
    return rows[0] if rows else None


async def telegram_next_parked(conn: aiosqlite.Connection, now: datetime) -> str | None:
    """When the earliest parked (not yet due) row becomes due (ISO), if any."""
    rows = list(
        await conn.execute_fetchall(
            f"SELECT MIN(o.not_before) FROM outbox o WHERE {TELEGRAM_ROWS} AND o.not_before > ?",
            (iso(now),),
        )
    )
    return rows[0][0] if rows else None


async def due_count(conn: aiosqlite.Connection, now: datetime) -> int:
    """Queued rows of *every* channel that are due now (parked ones are not): what
    `Sender.wait_idle` (tests, the sandbox) waits for, the other channels' dispatch included."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT COUNT(*) FROM outbox WHERE status = 'queued' AND not_before <= ?",
            (iso(now),),
        )
    )
    return int(rows[0][0]) if rows else 0


async def telegram_release_parked(conn: aiosqlite.Connection, now: datetime) -> int:
    """Parked rows become due now (a send just succeeded: the outage is over). Returns count.

    Only rows that were parked after failures (`attempts > 0`); a row queued for later on
    purpose keeps its time. The sender takes them in its usual order, urgent first.
    """
    cur = await conn.execute(
        f"UPDATE outbox AS o SET not_before = :now WHERE {TELEGRAM_ROWS}"
        " AND o.not_before > :now AND o.attempts > 0",
        {"now": iso(now)},
    )
    return cur.rowcount or 0


async def insert(
    conn: aiosqlite.Connection,
    now: datetime,
    priority: int,
    chat_id: int,
    kind: str,
    payload: str,
    ref: str | None,
) -> int:
    """Queue one row (`payload` is the JSON text), due now; returns its id (`bot.messenger`)."""
    cur = await conn.execute(
        "INSERT INTO outbox (priority, chat_id, kind, payload, ref, not_before, created_at)"
        " VALUES (?,?,?,?,?,?,?)",
        (priority, chat_id, kind, payload, ref, iso(now), iso(now)),
    )
    return cur.lastrowid or 0


async def latest_send_of_ref(
    conn: aiosqlite.Connection, ref: str, chat_id: int
) -> aiosqlite.Row | None:
    """(status, message_id) of the newest 'send' row of `ref` in this chat, if any: the
    message an edit (`enqueue_edit_ref`) refers to."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT status, message_id FROM outbox WHERE ref = ? AND chat_id = ? AND kind = 'send'"
            " ORDER BY id DESC LIMIT 1",
            (ref, chat_id),
        )
    )
    return rows[0] if rows else None


async def finish(
    conn: aiosqlite.Connection,
    outbox_id: int,
    status: str,
    message_id: int | None,
    now: datetime,
    error: str | None,
) -> None:
    """A queued row is done (sent or failed). A file's bytes are not kept once Telegram has
    them (an export must not live on in the outbox), nor a secret text (an enrolment code);
    the rest of the row is pruned later (bot/delivery/retention.py)."""
    await conn.execute(
        "UPDATE outbox SET status = ?, message_id = ?, sent_at = ?, last_error = ?,"
        " attempts = attempts + 1, payload = CASE WHEN kind IN ('document', 'photo')"
        " THEN json_remove(payload, '$.data') WHEN json_extract(payload, '$.secret')"
        " THEN json_remove(payload, '$.text', '$.buttons') ELSE payload END"
        " WHERE id = ? AND status = 'queued'",
        (status, message_id, iso(now), error, outbox_id),
    )


async def failed_attempt(
    conn: aiosqlite.Connection, outbox_id: int, error: str, not_before: datetime | None
) -> None:
    """One more failed attempt on a queued row; with `not_before` it is parked until then."""
    await conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?,"
        " not_before = COALESCE(?, not_before) WHERE id = ? AND status = 'queued'",
        (error, iso(not_before) if not_before else None, outbox_id),
    )


async def note_error(conn: aiosqlite.Connection, outbox_id: int, error: str) -> None:
    """Remember the last error of a queued row (no attempt counted: a 429 wait)."""
    await conn.execute(
        "UPDATE outbox SET last_error = ? WHERE id = ? AND status = 'queued'",
        (error, outbox_id),
    )


async def move_chat(conn: aiosqlite.Connection, old: int, new: int) -> None:
    """The chat became a supergroup: its queued rows go to the new chat id."""
    await conn.execute(
        "UPDATE outbox SET chat_id = ? WHERE chat_id = ? AND status = 'queued'", (new, old)
    )
