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
# meta key holding "<id> <hash>" of the last entry, written in the same transaction as the entry:
# a hash chain alone cannot tell that its last entries were deleted, the head record can.
HEAD_KEY = "audit_head"


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
    """Append one entry. Call inside `Database.transaction()`.

    The entry chains to the recorded head rather than to whatever row is last, and takes the id
    after both: if the last entries were deleted, the next entry keeps the gap and the broken
    link visible instead of quietly closing them.
    """
    async with conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1") as cur:
        row = await cur.fetchone()
    last_id, prev = (row[0], row[1]) if row else (0, GENESIS)
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)) as cur:
        head_row = await cur.fetchone()
    head_id = 0
    if head_row is not None:
        head_id, prev = _parse_head(str(head_row[0]))
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
        "INSERT INTO audit (id, at, actor, action, subject, entity, old_value, new_value,"
        " reason, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (max(last_id, head_id) + 1, *[content[f] for f in FIELDS], prev, digest),
    )
    entry_id = cur.lastrowid or 0
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (HEAD_KEY, f"{entry_id} {digest}"),
    )
    return entry_id


def _parse_head(value: str) -> tuple[int, str]:
    """ "<id> <hash>" → (id, hash); a damaged value gives (-1, "") so verify reports it."""
    id_text, _, digest = value.partition(" ")
    return (int(id_text), digest) if id_text.isdigit() else (-1, "")


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    problem: str | None = None


async def verify(conn: aiosqlite.Connection) -> VerifyResult:
    """Walk the chain; report the first entry that was edited, deleted or reordered.

    Deleted entries show as a gap in the ids (the chain then breaks at the next entry); deleted
    last entries as a chain that ends before the head recorded in meta; an edited entry as a hash
    that no longer matches its content; moved or swapped entries as a broken link to the
    previous entry.
    """
    prev = GENESIS
    checked = 0
    last_id = 0
    async with conn.execute(
        f"SELECT id, {', '.join(FIELDS)}, prev_hash, hash FROM audit ORDER BY id"
    ) as cur:
        async for row in cur:
            content = {f: row[f] for f in FIELDS}
            if row["id"] != last_id + 1:
                return VerifyResult(
                    False, checked, last_id + 1, f"entry {last_id + 1} is missing (deleted)"
                )
            if entry_hash(row["prev_hash"], content) != row["hash"]:
                return VerifyResult(False, checked, row["id"], "content changed (edited)")
            if row["prev_hash"] != prev:
                return VerifyResult(
                    False,
                    checked,
                    row["id"],
                    "does not follow the entry before it (reordered, or replaced with a new hash)",
                )
            prev = row["hash"]
            last_id = row["id"]
            checked += 1
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)) as cur:
        head = await cur.fetchone()
    if head is None:
        if checked:
            return VerifyResult(False, checked, None, "the record of the last entry is missing")
        return VerifyResult(True, checked)
    head_id, head_hash = _parse_head(str(head[0]))
    if head_id > last_id:
        return VerifyResult(
            False,
            checked,
            last_id + 1,
            f"entries {last_id + 1} to {head_id} are missing (last entries deleted)",
        )
    if head_id < last_id:
        return VerifyResult(
            False, checked, head_id + 1, "entry added outside the audit trail (after the head)"
        )
    if head_hash != prev:
        return VerifyResult(False, checked, last_id, "last entry does not match the recorded head")
    return VerifyResult(True, checked)


async def head(conn: aiosqlite.Connection) -> str | None:
    """The recorded head, "<id> <hash>": note it outside the server to anchor the chain."""
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None
