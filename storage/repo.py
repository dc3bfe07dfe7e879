"""Row types and the queries the services share. SQL lives here, not in handlers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import aiosqlite

from bot.clock import from_iso, iso
from bot.domain.schedule import Occurrence
from bot.domain.study import parse_hhmm

OPEN_STATES = ("scheduled", "prompted", "reminded")


@dataclass(frozen=True)
class Patient:
    id: int
    subject: str
    injection_date: date
    enrolled_on: date
    lang: str | None
    timezone: str
    prompt_time: time
    status: str
    chat_id: int | None
    user_id: int | None
    unreachable: bool
    channel: str = "telegram"  # telegram | web (migration 0013)
    phone: str | None = None  # E.164, web patients only

    @classmethod
    def from_row(cls, r: aiosqlite.Row) -> Patient:
        return cls(
            id=r["id"],
            subject=r["subject"],
            injection_date=date.fromisoformat(r["injection_date"]),
            enrolled_on=date.fromisoformat(r["enrolled_on"]),
            lang=r["lang"],
            timezone=r["timezone"],
            prompt_time=parse_hhmm(r["prompt_time"]),
            status=r["status"],
            chat_id=r["chat_id"],
            user_id=r["user_id"],
            unreachable=bool(r["unreachable"]),
            channel=r["channel"] if "channel" in r.keys() else "telegram",
            phone=r["phone"] if "phone" in r.keys() else None,
        )


@dataclass(frozen=True)
class OccRow:
    id: int
    patient_id: int
    key: str
    phase: str
    form: str
    study_day: int
    local_date: date
    opens_at: datetime
    remind_at: datetime
    closes_at: datetime
    status: str
    submitted_at: datetime | None

    @classmethod
    def from_row(cls, r: aiosqlite.Row) -> OccRow:
        return cls(
            id=r["id"],
            patient_id=r["patient_id"],
            key=r["key"],
            phase=r["phase"],
            form=r["form"],
            study_day=r["study_day"],
            local_date=date.fromisoformat(r["local_date"]),
            opens_at=from_iso(r["opens_at"]),
            remind_at=from_iso(r["remind_at"]),
            closes_at=from_iso(r["closes_at"]),
            status=r["status"],
            submitted_at=from_iso(r["submitted_at"]) if r["submitted_at"] else None,
        )

    def is_open(self, now: datetime) -> bool:
        return self.status in OPEN_STATES and self.opens_at <= now < self.closes_at


@dataclass(frozen=True)
class Staff:
    telegram_id: int
    role: str
    name: str
    lang: str
    active: bool

    @classmethod
    def from_row(cls, r: aiosqlite.Row) -> Staff:
        return cls(r["telegram_id"], r["role"], r["name"], r["lang"], bool(r["active"]))


# execute_fetchall is one trip to aiosqlite's thread; execute + fetch + close are three. The
# queries behind `_one` are lookups by key, aggregates or LIMIT 1 (docs/performance.md).
async def _one(conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    rows = list(await conn.execute_fetchall(sql, params))
    return rows[0] if rows else None


async def _all(conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    return list(await conn.execute_fetchall(sql, params))


async def patient_by_user(conn: aiosqlite.Connection, user_id: int) -> Patient | None:
    r = await _one(conn, "SELECT * FROM patients WHERE user_id = ?", (user_id,))
    return Patient.from_row(r) if r else None


async def patient_by_id(conn: aiosqlite.Connection, pid: int) -> Patient | None:
    r = await _one(conn, "SELECT * FROM patients WHERE id = ?", (pid,))
    return Patient.from_row(r) if r else None


async def patient_by_subject(conn: aiosqlite.Connection, subject: str) -> Patient | None:
    r = await _one(conn, "SELECT * FROM patients WHERE subject = ?", (subject,))
    return Patient.from_row(r) if r else None


async def staff_by_id(conn: aiosqlite.Connection, telegram_id: int) -> Staff | None:
    r = await _one(conn, "SELECT * FROM staff WHERE telegram_id = ? AND active = 1", (telegram_id,))
    return Staff.from_row(r) if r else None


async def active_staff(conn: aiosqlite.Connection, roles: tuple[str, ...] = ()) -> list[Staff]:
    """Active staff who can be reached in Telegram (console-only members have negative ids)."""
    rows = await _all(
        conn, "SELECT * FROM staff WHERE active = 1 AND telegram_id > 0 ORDER BY telegram_id"
    )
    staff = [Staff.from_row(r) for r in rows]
    return [s for s in staff if not roles or s.role in roles]


async def occurrence(conn: aiosqlite.Connection, occ_id: int) -> OccRow | None:
    r = await _one(conn, "SELECT * FROM occurrences WHERE id = ?", (occ_id,))
    return OccRow.from_row(r) if r else None


async def open_occurrence(
    conn: aiosqlite.Connection, patient_id: int, now: datetime
) -> OccRow | None:
    r = await _one(
        conn,
        "SELECT * FROM occurrences WHERE patient_id = ? AND status IN ('scheduled','prompted',"
        "'reminded') AND opens_at <= ? AND closes_at > ? ORDER BY opens_at LIMIT 1",
        (patient_id, iso(now), iso(now)),
    )
    return OccRow.from_row(r) if r else None


async def latest_started(
    conn: aiosqlite.Connection, patient_id: int, now: datetime
) -> OccRow | None:
    """The most recent occurrence that has opened (whatever its state)."""
    r = await _one(
        conn,
        "SELECT * FROM occurrences WHERE patient_id = ? AND opens_at <= ?"
        " ORDER BY opens_at DESC LIMIT 1",
        (patient_id, iso(now)),
    )
    return OccRow.from_row(r) if r else None


async def next_opening(conn: aiosqlite.Connection, patient_id: int, now: datetime) -> OccRow | None:
    r = await _one(
        conn,
        "SELECT * FROM occurrences WHERE patient_id = ? AND status = 'scheduled' AND opens_at > ?"
        " ORDER BY opens_at LIMIT 1",
        (patient_id, iso(now)),
    )
    return OccRow.from_row(r) if r else None


async def occurrences_for(conn: aiosqlite.Connection, patient_id: int) -> list[OccRow]:
    rows = await _all(
        conn, "SELECT * FROM occurrences WHERE patient_id = ? ORDER BY opens_at", (patient_id,)
    )
    return [OccRow.from_row(r) for r in rows]


async def set_study_days(conn: aiosqlite.Connection, changes: list[tuple[int, int]]) -> None:
    """Relabel stored diaries with new study days, (occurrence id, day) each: after a re-anchor."""
    await conn.executemany(
        "UPDATE occurrences SET study_day = ? WHERE id = ?", [(day, i) for i, day in changes]
    )


async def insert_occurrences(
    conn: aiosqlite.Connection, patient_id: int, occs: list[Occurrence]
) -> None:
    await conn.executemany(
        "INSERT OR IGNORE INTO occurrences (patient_id, key, phase, form, study_day, local_date,"
        " opens_at, remind_at, closes_at) VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (
                patient_id,
                o.key,
                o.phase,
                o.form,
                o.study_day,
                o.local_date.isoformat(),
                iso(o.opens_at),
                iso(o.remind_at),
                iso(o.closes_at),
            )
            for o in occs
        ],
    )


async def answers(conn: aiosqlite.Connection, occ_id: int) -> dict[str, str]:
    rows = await _all(conn, "SELECT item, value FROM answers WHERE occurrence_id = ?", (occ_id,))
    return {r["item"]: r["value"] for r in rows}


async def meta_get(conn: aiosqlite.Connection, key: str) -> str | None:
    r = await _one(conn, "SELECT value FROM meta WHERE key = ?", (key,))
    return r["value"] if r else None


async def meta_set(conn: aiosqlite.Connection, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


# ------------------------------------------------------------------ enrolment codes
async def insert_code(
    conn: aiosqlite.Connection, code_hash: str, patient_id: int, expires: datetime, now: datetime
) -> None:
    """A new one-time code, stored only as its keyed hash (bot/services/codes.py)."""
    await conn.execute(
        "INSERT INTO enrolment_codes (code_hash, patient_id, expires_at, created_at, keyed)"
        " VALUES (?,?,?,?,1)",
        (code_hash, patient_id, iso(expires), iso(now)),
    )


async def code_by_hash(conn: aiosqlite.Connection, keyed: str, legacy: str) -> Any:
    """The code row for a typed code: its keyed hash, or (codes issued before 0010) plain."""
    return await _one(
        conn,
        "SELECT * FROM enrolment_codes WHERE (code_hash = ? AND keyed = 1)"
        " OR (code_hash = ? AND keyed = 0)",
        (keyed, legacy),
    )


async def revoke_codes(conn: aiosqlite.Connection, patient_id: int, now: datetime) -> int:
    """Revoke the patient's unused codes; how many."""
    cur = await conn.execute(
        "UPDATE enrolment_codes SET revoked_at = ? WHERE patient_id = ? AND used_at IS NULL"
        " AND revoked_at IS NULL",
        (iso(now), patient_id),
    )
    return cur.rowcount


async def unlink_patient(conn: aiosqlite.Connection, patient_id: int) -> None:
    """Detach the patient's Telegram account: nothing more goes to it or comes from it.

    An active patient is 'invited' again (no prompts) until a new code is redeemed; a paused
    one stays paused. Messages still queued for the old chat are dropped, its open diary
    session and typed-answer wait are forgotten (the answers already given stay).
    """
    patient = await patient_by_id(conn, patient_id)
    if patient is None or patient.chat_id is None:
        return
    await conn.execute(
        "UPDATE outbox SET status = 'failed', last_error = 'unlinked' WHERE chat_id = ?"
        " AND status = 'queued'",
        (patient.chat_id,),
    )
    await conn.execute("DELETE FROM pending_inputs WHERE chat_id = ?", (patient.chat_id,))
    await conn.execute("DELETE FROM diary_sessions WHERE patient_id = ?", (patient_id,))
    await conn.execute(
        "UPDATE patients SET chat_id = NULL, user_id = NULL, unreachable = 0,"
        " status = CASE WHEN status = 'active' THEN 'invited' ELSE status END WHERE id = ?",
        (patient_id,),
    )
