"""An old database for the upgrade tests: only the first migrations, a subject with a diary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from bot.clock import iso
from storage import audit
from storage.db import Database

OLD = 6  # the schema of the first release with data out
AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


async def build_old(path: Path, upto: int = OLD) -> None:
    """A database made by an older diarybot: migrations 1..upto, a subject with one diary."""
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    conn.row_factory = aiosqlite.Row
    db = Database(conn, str(path))
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await db.migrate(upto=upto)
        async with db.transaction() as c:
            await c.execute(
                "INSERT INTO patients (id, subject, injection_date, enrolled_on, lang, timezone,"
                " prompt_time, status, created_at) VALUES (1, 'RP-001', '2026-12-01',"
                " '2026-11-28', 'en', 'Asia/Shanghai', '20:00', 'active', ?)",
                (iso(AT),),
            )
            await c.execute(
                "INSERT INTO occurrences (id, patient_id, key, phase, form, study_day,"
                " local_date, opens_at, remind_at, closes_at, status, submitted_at)"
                " VALUES (1, 1, 'daily:3', 'daily', 'daily', 3, '2026-12-04', ?, ?, ?,"
                " 'completed', ?)",
                (iso(AT), iso(AT), iso(AT), iso(AT)),
            )
            for item, value in (("BLEED", "1"), ("URGENCY", "1"), ("PAIN", "3")):
                await c.execute(
                    "INSERT INTO answers (occurrence_id, item, value, answered_at, submitted_at)"
                    " VALUES (1, ?, ?, ?, ?)",
                    (item, value, iso(AT), iso(AT)),
                )
                await _old_record(c, f"daily:3/{item}", value)
    finally:
        await conn.close()


async def _old_record(conn: aiosqlite.Connection, entity: str, value: str) -> None:
    """An audit entry as a diarybot before signatures (migration 0010) wrote it: hash chain and
    head only (the head record came with 0005)."""
    rows = list(await conn.execute_fetchall("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1"))
    last_id, prev = (rows[0][0], rows[0][1]) if rows else (0, audit.GENESIS)
    content = {
        "at": iso(AT), "actor": "patient:RP-001", "action": "answer", "subject": "RP-001",
        "entity": entity, "old_value": None, "new_value": value, "reason": None,
    }  # fmt: skip
    digest = audit.entry_hash(prev, content)
    await conn.execute(
        "INSERT INTO audit (id, at, actor, action, subject, entity, old_value, new_value,"
        " reason, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (last_id + 1, *content.values(), prev, digest),
    )
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (audit.HEAD_KEY, f"{last_id + 1} {digest}"),
    )
