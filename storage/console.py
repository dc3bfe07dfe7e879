"""Rows and queries of the web console: accounts (columns of `staff`), invites, sessions.

Tokens (invite links, session cookies) are stored as their SHA-256 only: a copy of the database
lets nobody sign in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from bot.clock import from_iso, iso
from storage.repo import _all, _one


@dataclass(frozen=True)
class Account:
    staff_id: int
    role: str
    name: str
    lang: str
    active: bool
    email: str | None
    password_hash: str | None
    totp_secret: str | None
    totp_confirmed: bool
    totp_last_step: int | None
    failed_logins: int
    locked: bool

    @property
    def telegram_id(self) -> int | None:
        """Telegram user ids are positive; console-only members have negative ids."""
        return self.staff_id if self.staff_id > 0 else None

    @classmethod
    def from_row(cls, r: aiosqlite.Row) -> Account:
        return cls(
            staff_id=r["telegram_id"],
            role=r["role"],
            name=r["name"],
            lang=r["lang"],
            active=bool(r["active"]),
            email=r["email"],
            password_hash=r["password_hash"],
            totp_secret=r["totp_secret"],
            totp_confirmed=bool(r["totp_confirmed"]),
            totp_last_step=r["totp_last_step"],
            failed_logins=r["failed_logins"],
            locked=r["locked_at"] is not None,
        )


@dataclass(frozen=True)
class Session:
    token_hash: str
    staff_id: int
    csrf: str
    created_at: datetime
    seen_at: datetime
    revoked: bool


async def account(conn: aiosqlite.Connection, staff_id: int) -> Account | None:
    r = await _one(conn, "SELECT * FROM staff WHERE telegram_id = ?", (staff_id,))
    return Account.from_row(r) if r else None


async def account_by_email(conn: aiosqlite.Connection, email: str) -> Account | None:
    r = await _one(conn, "SELECT * FROM staff WHERE email = ?", (email.strip(),))
    return Account.from_row(r) if r else None


async def accounts(conn: aiosqlite.Connection) -> list[Account]:
    rows = await _all(conn, "SELECT * FROM staff ORDER BY active DESC, name")
    return [Account.from_row(r) for r in rows]


async def next_console_only_id(conn: aiosqlite.Connection) -> int:
    """A new negative staff id for a member without Telegram."""
    r = await _one(conn, "SELECT MIN(telegram_id) AS m FROM staff", ())
    low = r["m"] if r and r["m"] is not None else 0
    return min(low, 0) - 1


async def insert_account(
    conn: aiosqlite.Connection,
    staff_id: int,
    role: str,
    name: str,
    lang: str,
    email: str,
    now: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO staff (telegram_id, role, name, lang, active, created_at, email)"
        " VALUES (?, ?, ?, ?, 1, ?, ?)",
        (staff_id, role, name, lang, iso(now), email),
    )


async def set_email(conn: aiosqlite.Connection, staff_id: int, email: str) -> None:
    await conn.execute("UPDATE staff SET email = ? WHERE telegram_id = ?", (email, staff_id))


async def update(conn: aiosqlite.Connection, staff_id: int, **fields: Any) -> None:
    allowed = {
        "password_hash",
        "totp_secret",
        "totp_confirmed",
        "totp_last_step",
        "failed_logins",
        "locked_at",
        "active",
    }
    if not fields or set(fields) - allowed:
        raise ValueError(f"not an account field: {sorted(set(fields) - allowed)}")
    cols = ", ".join(f"{k} = ?" for k in fields)
    values = [iso(v) if isinstance(v, datetime) else v for v in fields.values()]
    await conn.execute(f"UPDATE staff SET {cols} WHERE telegram_id = ?", (*values, staff_id))


# --------------------------------------------------------------------------- invites


async def add_invite(
    conn: aiosqlite.Connection, token_hash: str, staff_id: int, now: datetime, expires: datetime
) -> None:
    # A new invite replaces any unused one: only the latest link works.
    await conn.execute(
        "DELETE FROM console_invites WHERE staff_id = ? AND used_at IS NULL", (staff_id,)
    )
    await conn.execute(
        "INSERT INTO console_invites (token_hash, staff_id, created_at, expires_at)"
        " VALUES (?, ?, ?, ?)",
        (token_hash, staff_id, iso(now), iso(expires)),
    )


async def invite(conn: aiosqlite.Connection, token_hash: str, now: datetime) -> int | None:
    """The staff id of a usable (unused, unexpired) invite."""
    r = await _one(
        conn,
        "SELECT staff_id FROM console_invites"
        " WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        (token_hash, iso(now)),
    )
    return int(r["staff_id"]) if r else None


async def use_invite(conn: aiosqlite.Connection, token_hash: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE console_invites SET used_at = ? WHERE token_hash = ?", (iso(now), token_hash)
    )


# --------------------------------------------------------------------------- sessions


async def add_session(
    conn: aiosqlite.Connection, token_hash: str, staff_id: int, csrf: str, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO console_sessions (token_hash, staff_id, csrf, created_at, seen_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (token_hash, staff_id, csrf, iso(now), iso(now)),
    )


async def session(conn: aiosqlite.Connection, token_hash: str) -> Session | None:
    r = await _one(conn, "SELECT * FROM console_sessions WHERE token_hash = ?", (token_hash,))
    if r is None:
        return None
    return Session(
        token_hash=r["token_hash"],
        staff_id=r["staff_id"],
        csrf=r["csrf"],
        created_at=from_iso(r["created_at"]),
        seen_at=from_iso(r["seen_at"]),
        revoked=r["revoked_at"] is not None,
    )


async def touch_session(conn: aiosqlite.Connection, token_hash: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE console_sessions SET seen_at = ? WHERE token_hash = ?", (iso(now), token_hash)
    )


async def revoke_session(conn: aiosqlite.Connection, token_hash: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE console_sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
        (iso(now), token_hash),
    )


async def revoke_all(conn: aiosqlite.Connection, staff_id: int, now: datetime) -> int:
    cur = await conn.execute(
        "UPDATE console_sessions SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL",
        (iso(now), staff_id),
    )
    return cur.rowcount


# --------------------------------------------------------------------------- audit trail views


@dataclass(frozen=True)
class AuditFilter:
    subject: str | None = None
    actor: str | None = None
    action: str | None = None
    since: str | None = None  # ISO date (UTC), inclusive
    until: str | None = None  # ISO date (UTC), inclusive


async def audit_rows(
    conn: aiosqlite.Connection, f: AuditFilter, *, limit: int = 500
) -> list[aiosqlite.Row]:
    """The newest `limit` audit entries matching the filter, newest first."""
    where, params = [], []
    if f.subject:
        where.append("subject = ?")
        params.append(f.subject)
    if f.actor:
        where.append("actor = ?")
        params.append(f.actor)
    if f.action:
        where.append("action = ?")
        params.append(f.action)
    if f.since:
        where.append("at >= ?")
        params.append(f.since)
    if f.until:
        where.append("at < date(?, '+1 day')")
        params.append(f.until)
    sql = "SELECT * FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    return await _all(conn, sql, (*params, limit))


async def audit_actions(conn: aiosqlite.Connection) -> list[str]:
    rows = await _all(conn, "SELECT DISTINCT action FROM audit ORDER BY action")
    return [r["action"] for r in rows]


async def subjects(conn: aiosqlite.Connection) -> list[str]:
    rows = await _all(conn, "SELECT subject FROM patients ORDER BY subject")
    return [r["subject"] for r in rows]


async def completed_diaries(conn: aiosqlite.Connection, patient_id: int) -> list[aiosqlite.Row]:
    """The diaries a site correction may change: submitted ones, and those closed incomplete
    with their answers kept (data too), by study day."""
    return await _all(
        conn,
        "SELECT id, key, study_day, local_date, form FROM occurrences WHERE patient_id = ?"
        " AND (status = 'completed' OR incomplete_at IS NOT NULL) ORDER BY study_day",
        (patient_id,),
    )
