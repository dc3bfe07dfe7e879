"""Append-only, hash-chained, signed audit trail (21 CFR Part 11 §11.10(e)).

Each entry's hash covers its content and the previous entry's hash, so an edited, deleted or
reordered row breaks the chain at that row. Each entry also carries an HMAC of its hash keyed
by the server secret that is not in the database (storage/keys.py): whoever can write the file
but not read the key cannot recompute a chain that verifies. Write entries inside the same
transaction as the change they record: either both are stored or neither.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from bot.clock import iso
from storage import keys

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


def entry_mac(key: bytes, entry_id: int, digest: str) -> str:
    """HMAC-SHA256 of the entry's number and hash, keyed by the audit sub-key."""
    mac_key = keys.subkey(key, "audit")
    return hmac.new(mac_key, f"{entry_id} {digest}".encode("ascii"), hashlib.sha256).hexdigest()


_LAST_AND_HEAD = (
    "SELECT last.id, last.hash, last.at, (SELECT value FROM meta WHERE key = ?)"
    " FROM (SELECT 1) LEFT JOIN (SELECT id, hash, at FROM audit ORDER BY id DESC LIMIT 1)"
    " AS last ON 1"
)


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
    key = keys.for_conn(conn)
    # The last row and the recorded head in one trip to aiosqlite's thread (this runs on every
    # diary step: docs/performance.md); always one row, NULLs when the trail is empty.
    rows = await conn.execute_fetchall(_LAST_AND_HEAD, (HEAD_KEY,))
    last_id, last_hash, last_at, head_value = next(iter(rows))
    prev = last_hash if last_id is not None else GENESIS
    # Time never goes backwards in the trail (verify checks it): a clock stepped back by a
    # time sync records the previous entry's time instead.
    at = max(iso(now), last_at) if last_id is not None else iso(now)
    last_id = last_id or 0
    head_id = 0
    if head_value is not None:
        head_id, prev = _parse_head(str(head_value))
    content = {
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "entity": entity,
        "old_value": _text(old),
        "new_value": _text(new),
        "reason": reason,
    }
    digest = entry_hash(prev, content)
    entry_id = max(last_id, head_id) + 1
    await conn.execute(
        "INSERT INTO audit (id, at, actor, action, subject, entity, old_value, new_value,"
        " reason, prev_hash, hash, mac) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (entry_id, *[content[f] for f in FIELDS], prev, digest, entry_mac(key, entry_id, digest)),
    )
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
    unsigned: int = 0  # entries written before signatures existed (sealed by the next one)


async def verify(
    conn: aiosqlite.Connection,
    *,
    expect: tuple[int, str] | None = None,
    key: bytes | None = None,
) -> VerifyResult:
    """Walk the chain; report the first entry that was edited, deleted, reordered or forged.

    Deleted entries show as a gap in the ids (the chain then breaks at the next entry); deleted
    last entries as a chain that ends before the head recorded in meta or before `expect`
    (an "<id> <hash>" noted outside the server); an edited entry as a hash that no longer
    matches its content; moved or swapped entries as a broken link to the previous entry; an
    entry written or re-hashed without the audit key as a signature that does not match;
    back-dated entries as time going backwards; a wiped trail as no entries although patients
    or diaries exist. `key` defaults to the one registered for the connection.
    """
    secret = key if key is not None else keys.for_conn(conn)
    # A database from before signatures (schema < 0010, e.g. the backup taken before that
    # migration) is checked as a plain hash chain; from 0010 on every chain must be signed.
    signing = await _signed_schema(conn)
    prev = GENESIS
    checked = 0
    last_id = 0
    last_at = ""
    signed = False
    unsigned = 0
    mac_column = "mac" if signing else "NULL AS mac"
    async with conn.execute(
        f"SELECT id, {', '.join(FIELDS)}, prev_hash, hash, {mac_column} FROM audit ORDER BY id"
    ) as cur:
        async for row in cur:
            content = {f: row[f] for f in FIELDS}
            entry_id = row["id"]
            if entry_id != last_id + 1:
                return VerifyResult(
                    False, checked, last_id + 1, f"entry {last_id + 1} is missing (deleted)"
                )
            if entry_hash(row["prev_hash"], content) != row["hash"]:
                return VerifyResult(False, checked, entry_id, "content changed (edited)")
            if row["prev_hash"] != prev:
                return VerifyResult(
                    False,
                    checked,
                    entry_id,
                    "does not follow the entry before it (reordered, or replaced with a new hash)",
                )
            mac = row["mac"]
            if mac is None:
                if signed:  # unsigned entries may only precede the first signed one (0010)
                    return VerifyResult(False, checked, entry_id, UNSIGNED)
                unsigned += 1
            elif not hmac.compare_digest(str(mac), entry_mac(secret, entry_id, row["hash"])):
                return VerifyResult(False, checked, entry_id, FORGED)
            else:
                signed = True
            if str(row["at"]) < last_at:
                return VerifyResult(
                    False, checked, entry_id, "time goes backwards (back-dated entry)"
                )
            if expect is not None and entry_id == expect[0] and row["hash"] != expect[1]:
                return VerifyResult(
                    False,
                    checked,
                    entry_id,
                    "differs from the head noted outside the server (the trail was rewritten)",
                )
            prev = row["hash"]
            last_id = entry_id
            last_at = str(row["at"])
            checked += 1
    if checked and signing and not signed:
        return VerifyResult(False, checked, last_id, UNSIGNED)
    if expect is not None and expect[0] > last_id:
        return VerifyResult(
            False,
            checked,
            last_id + 1,
            f"entries {last_id + 1} to {expect[0]} are missing: the trail ends before the head"
            " noted outside the server (last entries deleted)",
        )
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)) as cur:
        head = await cur.fetchone()
    if head is None:
        if checked:
            return VerifyResult(False, checked, None, "the record of the last entry is missing")
        if await _has_study_data(conn):
            return VerifyResult(
                False, 0, None, "the audit trail is empty but patients or diaries exist (wiped)"
            )
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
    return VerifyResult(True, checked, unsigned=unsigned if signing else 0)


UNSIGNED = "not signed with the audit key (added or rewritten outside the bot)"
FORGED = (
    "signature does not match (written or re-hashed without the audit key, or the key is wrong)"
)


SIGNED_FROM_SCHEMA = 10  # storage/migrations/0010_privacy.sql adds audit.mac


async def _signed_schema(conn: aiosqlite.Connection) -> bool:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version >= SIGNED_FROM_SCHEMA:
        return True
    # An older version number with the signature column is a database made to look old.
    async with conn.execute(
        "SELECT COUNT(*) FROM pragma_table_info('audit') WHERE name = 'mac'"
    ) as cur:
        row = await cur.fetchone()
    return bool(row and row[0])


async def _has_study_data(conn: aiosqlite.Connection) -> bool:
    async with conn.execute(
        "SELECT EXISTS (SELECT 1 FROM patients) OR EXISTS (SELECT 1 FROM occurrences)"
    ) as cur:
        row = await cur.fetchone()
    return bool(row and row[0])


def parse_expect(text: str) -> tuple[int, str]:
    """ "N:HASH" (or "N HASH", as `verify` prints it) → (N, hash); ValueError if malformed."""
    number, sep, digest = text.strip().replace(" ", ":", 1).partition(":")
    digest = digest.strip().lower()
    if not sep or not number.isdigit() or int(number) < 1:
        raise ValueError(text)
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(text)
    return int(number), digest


async def seal_legacy(conn: aiosqlite.Connection) -> None:
    """Sign a chain written before entries were signed (migration 0010), once.

    The `audit_key` entry appended here is signed and chains to the last unsigned entry, so its
    signature vouches for the whole chain before it. Call with the key registered, outside a
    transaction (Database.open does, at start-up).
    """
    async with conn.execute("SELECT mac FROM audit ORDER BY id DESC LIMIT 1") as cur:
        row = await cur.fetchone()
    if row is None or row[0] is not None:
        return
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await record(conn, datetime.now(UTC), "system", "audit_key", new="signed from here on")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


async def head(conn: aiosqlite.Connection) -> str | None:
    """The recorded head, "<id> <hash>": note it outside the server to anchor the chain."""
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def entries(conn: aiosqlite.Connection, subject: str | None = None) -> list[aiosqlite.Row]:
    """Every audit entry (or those about one subject), oldest first (`diarybot audit show`)."""
    params: tuple[object, ...] = ()
    where = ""
    if subject is not None:
        where, params = " WHERE subject = ?", (subject,)
    return list(await conn.execute_fetchall(f"SELECT * FROM audit{where} ORDER BY id", params))
