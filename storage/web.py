"""Queries of the web diary (migration 0013): personal links, devices, the after-submit notice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.clock import iso
from storage.repo import Patient, _one


@dataclass(frozen=True)
class LinkRow:
    id: int
    patient_id: int
    failures: int
    locked: bool
    revoked: bool


def _link(r: aiosqlite.Row) -> LinkRow:
    return LinkRow(
        id=r["id"],
        patient_id=r["patient_id"],
        failures=r["failures"],
        locked=r["locked_at"] is not None,
        revoked=r["revoked_at"] is not None,
    )


async def revoke_links(conn: aiosqlite.Connection, patient_id: int, now: datetime) -> int:
    cur = await conn.execute(
        "UPDATE web_links SET revoked_at = ? WHERE patient_id = ? AND revoked_at IS NULL",
        (iso(now), patient_id),
    )
    return cur.rowcount


async def insert_link(
    conn: aiosqlite.Connection, patient_id: int, token_hash: str, now: datetime
) -> int:
    cur = await conn.execute(
        "INSERT INTO web_links (patient_id, token_hash, created_at) VALUES (?,?,?)",
        (patient_id, token_hash, iso(now)),
    )
    return cur.lastrowid or 0


async def link_by_hash(conn: aiosqlite.Connection, token_hash: str) -> LinkRow | None:
    r = await _one(conn, "SELECT * FROM web_links WHERE token_hash = ?", (token_hash,))
    return _link(r) if r else None


async def set_failures(
    conn: aiosqlite.Connection, link_id: int, failures: int, locked_at: datetime | None
) -> None:
    await conn.execute(
        "UPDATE web_links SET failures = ?, locked_at = ? WHERE id = ?",
        (failures, iso(locked_at) if locked_at else None, link_id),
    )


async def insert_device(
    conn: aiosqlite.Connection, token_hash: str, link_id: int, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO web_devices (token_hash, link_id, created_at, last_seen_at) VALUES (?,?,?,?)",
        (token_hash, link_id, iso(now), iso(now)),
    )


async def device_link(conn: aiosqlite.Connection, token_hash: str) -> int | None:
    r = await _one(conn, "SELECT link_id FROM web_devices WHERE token_hash = ?", (token_hash,))
    return int(r["link_id"]) if r else None


async def birth_year(conn: aiosqlite.Connection, patient_id: int) -> int | None:
    r = await _one(conn, "SELECT birth_year FROM patients WHERE id = ?", (patient_id,))
    return int(r["birth_year"]) if r and r["birth_year"] is not None else None


async def set_channel(
    conn: aiosqlite.Connection,
    patient_id: int,
    channel: str,
    phone: str | None,
    birth_year: int | None,
) -> None:
    await conn.execute(
        "UPDATE patients SET channel = ?, phone = ?, birth_year = ? WHERE id = ?",
        (channel, phone, birth_year, patient_id),
    )


async def set_notice(
    conn: aiosqlite.Connection, patient_id: int, occ_id: int, urgent: bool, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO web_notices (patient_id, occurrence_id, urgent, created_at) VALUES (?,?,?,?)"
        " ON CONFLICT (patient_id) DO UPDATE SET occurrence_id = excluded.occurrence_id,"
        " urgent = excluded.urgent, created_at = excluded.created_at",
        (patient_id, occ_id, int(urgent), iso(now)),
    )


async def notice(conn: aiosqlite.Connection, patient_id: int) -> tuple[int, bool] | None:
    """(occurrence id, urgent) of the patient's last diary submitted on the web."""
    r = await _one(
        conn, "SELECT occurrence_id, urgent FROM web_notices WHERE patient_id = ?", (patient_id,)
    )
    return (int(r["occurrence_id"]), bool(r["urgent"])) if r else None


async def visit(
    conn: aiosqlite.Connection, token_hash: str, device_hash: str
) -> tuple[LinkRow, Patient, bool] | None:
    """One query per page: the link, its patient, and whether this device passed the check."""
    r = await _one(
        conn,
        "SELECT p.*, l.id AS link_id, l.failures AS link_failures, l.locked_at, l.revoked_at,"
        " EXISTS (SELECT 1 FROM web_devices d WHERE d.token_hash = ? AND d.link_id = l.id)"
        " AS device_ok FROM web_links l JOIN patients p ON p.id = l.patient_id"
        " WHERE l.token_hash = ?",
        (device_hash, token_hash),
    )
    if r is None:
        return None
    link = LinkRow(
        id=r["link_id"],
        patient_id=r["id"],
        failures=r["link_failures"],
        locked=r["locked_at"] is not None,
        revoked=r["revoked_at"] is not None,
    )
    return link, Patient.from_row(r), bool(r["device_ok"])


async def activate(conn: aiosqlite.Connection, patient_id: int) -> None:
    """A web patient is active from enrolment: there is no code to redeem."""
    await conn.execute("UPDATE patients SET status = 'active' WHERE id = ?", (patient_id,))
