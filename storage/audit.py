"""Append-only, hash-chained audit trail (21 CFR Part 11 §11.10(e)).

Each entry's hash covers its content and the previous entry's hash, so an edited, deleted or
reordered row breaks the chain at that row. Write entries inside the same transaction as the
change they record: either both are stored or neither.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from bot.clock import iso

GENESIS = "0" * 64
FIELDS = ("at", "actor", "action", "subject", "entity", "old_value", "new_value", "reason")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def entry_hash(prev_hash: str, content: dict[str, Any]) -> str:
    body = json.dumps([prev_hash, *[content.get(f) for f in FIELDS]], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


async def record(
    conn: aiosqlite.Connection,
    now: datetime,
    actor: str,
    action: str,
    *,
    subject: str | None = None,
    entity: str | None = None,
    old: Any = None,
    new: Any = None,
    reason: str | None = None,
) -> int:
    """Append one entry. Call inside `Database.transaction()`."""
    async with conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1") as cur:
        row = await cur.fetchone()
    prev = row[0] if row else GENESIS
    content = {
        "at": iso(now),
        "actor": actor,
        "action": action,
        "subject": subject,
        "entity": entity,
        "old_value": _text(old),
        "new_value": _text(new),
        "reason": reason,
    }
    digest = entry_hash(prev, content)
    cur = await conn.execute(
        "INSERT INTO audit (at, actor, action, subject, entity, old_value, new_value, reason,"
        " prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (*[content[f] for f in FIELDS], prev, digest),
    )
    return cur.lastrowid or 0


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    problem: str | None = None


async def verify(conn: aiosqlite.Connection) -> VerifyResult:
    """Walk the chain; report the first entry that was edited, deleted or reordered."""
    prev = GENESIS
    checked = 0
    last_id = 0
    async with conn.execute(
        f"SELECT id, {', '.join(FIELDS)}, prev_hash, hash FROM audit ORDER BY id"
    ) as cur:
        async for row in cur:
            content = {f: row[f] for f in FIELDS}
            if row["prev_hash"] != prev:
                return VerifyResult(False, checked, row["id"], "previous entry missing or moved")
            if entry_hash(prev, content) != row["hash"]:
                return VerifyResult(False, checked, row["id"], "content changed")
            if row["id"] != last_id + 1:
                return VerifyResult(False, checked, row["id"], "entries missing before this one")
            prev = row["hash"]
            last_id = row["id"]
            checked += 1
    return VerifyResult(True, checked)
