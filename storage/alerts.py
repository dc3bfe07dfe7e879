"""Alert rows and the SQL that reads and writes them (tables from migration 0002).

Kept apart from the service (bot/escalation/service.py) so the service reads as the alert's life
cycle, not as SQL. (It was bot/escalation/store.py; SQL lives in storage/.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from bot.clock import from_iso, iso
from storage.repo import _all, _one

STATUSES = ("open", "acknowledged", "closed")
TRIAGES = ("not_ae", "ae", "sae")


def _dt(value: str | None) -> datetime | None:
    return from_iso(value) if value else None


@dataclass(frozen=True)
class Alert:
    id: int
    patient_id: int
    subject: str
    rule: str
    level: str
    reason: str
    status: str
    details: dict[str, Any]
    study_day: int | None
    answered_at: datetime | None
    raised_at: datetime
    updated_at: datetime
    # What has happened to it since it was raised (defaults: nothing yet).
    updates: int = 0
    resends: int = 0
    next_resend_at: datetime | None = None
    acked_by: int | None = None
    acked_at: datetime | None = None
    triage: str | None = None
    triaged_by: int | None = None
    triaged_at: datetime | None = None
    contacted_by: int | None = None
    contacted_at: datetime | None = None
    note: str | None = None
    note_by: int | None = None
    note_at: datetime | None = None
    sae_aware_at: datetime | None = None
    sae_next_reminder_at: datetime | None = None
    sae_reminders: int = 0
    sae_reported_at: datetime | None = None
    sae_reported_by: int | None = None
    closed_at: datetime | None = None

    @classmethod
    def from_row(cls, r: aiosqlite.Row) -> Alert:
        return cls(
            id=r["id"],
            patient_id=r["patient_id"],
            subject=r["subject"],
            rule=r["rule"],
            level=r["level"],
            reason=r["reason"],
            status=r["status"],
            details=json.loads(r["details"]),
            study_day=r["study_day"],
            answered_at=_dt(r["answered_at"]),
            raised_at=from_iso(r["raised_at"]),
            updated_at=from_iso(r["updated_at"]),
            updates=r["updates"],
            resends=r["resends"],
            next_resend_at=_dt(r["next_resend_at"]),
            acked_by=r["acked_by"],
            acked_at=_dt(r["acked_at"]),
            triage=r["triage"],
            triaged_by=r["triaged_by"],
            triaged_at=_dt(r["triaged_at"]),
            contacted_by=r["contacted_by"],
            contacted_at=_dt(r["contacted_at"]),
            note=r["note"],
            note_by=r["note_by"],
            note_at=_dt(r["note_at"]),
            sae_aware_at=_dt(r["sae_aware_at"]),
            sae_next_reminder_at=_dt(r["sae_next_reminder_at"]),
            sae_reminders=r["sae_reminders"],
            sae_reported_at=_dt(r["sae_reported_at"]),
            sae_reported_by=r["sae_reported_by"],
            closed_at=_dt(r["closed_at"]),
        )

    @property
    def events(self) -> list[dict[str, Any]]:
        """The diaries (or requests) behind the alert, oldest first."""
        return list(self.details.get("events", []))

    @property
    def sae_pending(self) -> bool:
        return self.triage == "sae" and self.sae_reported_at is None

    def staff_ids(self) -> set[int]:
        """Every staff member named on the alert (for showing names)."""
        ids = (
            self.acked_by,
            self.triaged_by,
            self.contacted_by,
            self.note_by,
            self.sae_reported_by,
        )
        return {i for i in ids if i is not None}


@dataclass(frozen=True)
class Copy:
    id: int
    alert_id: int
    chat_id: int
    staff_id: int | None
    lang: str
    kind: str
    ref: str


@dataclass(frozen=True)
class Pending:
    kind: str
    target: int
    created_at: datetime


_SELECT = "SELECT a.*, p.subject FROM alerts a JOIN patients p ON p.id = a.patient_id"


async def get(conn: aiosqlite.Connection, alert_id: int) -> Alert | None:
    r = await _one(conn, f"{_SELECT} WHERE a.id = ?", (alert_id,))
    return Alert.from_row(r) if r else None


async def open_for(conn: aiosqlite.Connection, patient_id: int, rule: str) -> Alert | None:
    r = await _one(
        conn,
        f"{_SELECT} WHERE a.patient_id = ? AND a.rule = ? AND a.status = 'open'",
        (patient_id, rule),
    )
    return Alert.from_row(r) if r else None


async def latest_for(conn: aiosqlite.Connection, patient_id: int, rule: str) -> Alert | None:
    r = await _one(
        conn,
        f"{_SELECT} WHERE a.patient_id = ? AND a.rule = ? ORDER BY a.id DESC LIMIT 1",
        (patient_id, rule),
    )
    return Alert.from_row(r) if r else None


async def listing(
    conn: aiosqlite.Connection,
    *,
    statuses: tuple[str, ...],
    level: str | None = None,
    patient_id: int | None = None,
) -> list[Alert]:
    """Alerts in the given states, oldest first."""
    marks = ",".join("?" for _ in statuses)
    sql = f"{_SELECT} WHERE a.status IN ({marks})"
    params: list[Any] = list(statuses)
    if level is not None:
        sql += " AND a.level = ?"
        params.append(level)
    if patient_id is not None:
        sql += " AND a.patient_id = ?"
        params.append(patient_id)
    rows = await _all(conn, sql + " ORDER BY a.raised_at, a.id", tuple(params))
    return [Alert.from_row(r) for r in rows]


async def due(conn: aiosqlite.Connection, column: str, now: datetime) -> list[Alert]:
    """Alerts whose `next_resend_at` or `sae_next_reminder_at` has come."""
    assert column in ("next_resend_at", "sae_next_reminder_at")
    rows = await _all(
        conn,
        f"{_SELECT} WHERE a.{column} IS NOT NULL AND a.{column} <= ? ORDER BY a.{column}, a.id",
        (iso(now),),
    )
    return [Alert.from_row(r) for r in rows]


async def next_due(conn: aiosqlite.Connection, now: datetime) -> datetime | None:
    r = await _one(
        conn,
        "SELECT MIN(t) FROM (SELECT MIN(next_resend_at) AS t FROM alerts"
        " WHERE next_resend_at > ? UNION ALL SELECT MIN(sae_next_reminder_at) FROM alerts"
        " WHERE sae_next_reminder_at > ?)",
        (iso(now), iso(now)),
    )
    return from_iso(r[0]) if r and r[0] else None


async def insert(
    conn: aiosqlite.Connection,
    *,
    patient_id: int,
    rule: str,
    level: str,
    reason: str,
    details: dict[str, Any],
    study_day: int | None,
    answered_at: datetime | None,
    now: datetime,
    next_resend_at: datetime | None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO alerts (patient_id, rule, level, reason, details, study_day, answered_at,"
        " raised_at, updated_at, next_resend_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            patient_id,
            rule,
            level,
            reason,
            dumps(details),
            study_day,
            iso(answered_at) if answered_at else None,
            iso(now),
            iso(now),
            iso(next_resend_at) if next_resend_at else None,
        ),
    )
    return cur.lastrowid or 0


async def set_fields(conn: aiosqlite.Connection, alert_id: int, **fields: Any) -> None:
    """UPDATE named columns; datetimes are stored as ISO text, dicts as JSON."""
    cols = []
    values: list[Any] = []
    for name, value in fields.items():
        cols.append(f"{name} = ?")
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, dict):
            value = dumps(value)
        values.append(value)
    await conn.execute(f"UPDATE alerts SET {', '.join(cols)} WHERE id = ?", (*values, alert_id))


def dumps(details: dict[str, Any]) -> str:
    return json.dumps(details, ensure_ascii=False, sort_keys=True)


# --------------------------------------------------------------------------- copies


async def add_copy(
    conn: aiosqlite.Connection,
    alert_id: int,
    chat_id: int,
    staff_id: int | None,
    lang: str,
    kind: str,
    now: datetime,
) -> Copy:
    cur = await conn.execute(
        "INSERT INTO alert_copies (alert_id, chat_id, staff_id, lang, kind, ref, created_at)"
        " VALUES (?,?,?,?,?,?,?)",
        (alert_id, chat_id, staff_id, lang, kind, f"alert:{alert_id}:pending", iso(now)),
    )
    copy_id = cur.lastrowid or 0
    ref = f"alert:{alert_id}:c{copy_id}"
    await conn.execute("UPDATE alert_copies SET ref = ? WHERE id = ?", (ref, copy_id))
    return Copy(copy_id, alert_id, chat_id, staff_id, lang, kind, ref)


async def copies(conn: aiosqlite.Connection, alert_id: int) -> list[Copy]:
    rows = await _all(
        conn, "SELECT * FROM alert_copies WHERE alert_id = ? ORDER BY id", (alert_id,)
    )
    return [
        Copy(r["id"], r["alert_id"], r["chat_id"], r["staff_id"], r["lang"], r["kind"], r["ref"])
        for r in rows
    ]


async def alert_of_message(conn: aiosqlite.Connection, chat_id: int, message_id: int) -> int | None:
    """The alert shown by a bot message (for a note typed as a reply to it)."""
    r = await _one(
        conn,
        "SELECT c.alert_id FROM outbox o JOIN alert_copies c ON c.ref = o.ref"
        " WHERE o.chat_id = ? AND o.message_id = ? AND o.kind = 'send'",
        (chat_id, message_id),
    )
    return int(r[0]) if r else None


# --------------------------------------------------------------------------- pending input


async def set_pending(
    conn: aiosqlite.Connection, who: str, kind: str, target: int, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO escalation_pending (who, kind, target, created_at) VALUES (?,?,?,?)"
        " ON CONFLICT (who) DO UPDATE SET kind = excluded.kind, target = excluded.target,"
        " created_at = excluded.created_at",
        (who, kind, target, iso(now)),
    )


async def get_pending(conn: aiosqlite.Connection, who: str) -> Pending | None:
    r = await _one(conn, "SELECT * FROM escalation_pending WHERE who = ?", (who,))
    return Pending(r["kind"], r["target"], from_iso(r["created_at"])) if r else None


async def clear_pending(conn: aiosqlite.Connection, who: str) -> None:
    await conn.execute("DELETE FROM escalation_pending WHERE who = ?", (who,))


async def staff_names(conn: aiosqlite.Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    marks = ",".join("?" for _ in ids)
    rows = await _all(
        conn, f"SELECT telegram_id, name FROM staff WHERE telegram_id IN ({marks})", tuple(ids)
    )
    return {r["telegram_id"]: r["name"] for r in rows}


# --------------------------------------------------------------------------- diary cards


async def diary_alerts(
    conn: aiosqlite.Connection, occurrence_id: int, level: str | None = None
) -> list[Alert]:
    """The alerts that show this diary (any state), oldest first (migration 0007)."""
    sql = (
        f"{_SELECT} JOIN alert_diaries d ON d.alert_id = a.id WHERE d.occurrence_id = ?"
        + (" AND a.level = ?" if level is not None else "")
        + " ORDER BY a.id"
    )
    params: tuple[Any, ...] = (occurrence_id, level) if level is not None else (occurrence_id,)
    return [Alert.from_row(r) for r in await _all(conn, sql, params)]


async def open_diary_alerts(
    conn: aiosqlite.Connection, patient_id: int, level: str, exclude: tuple[str, ...]
) -> list[Alert]:
    """The patient's unacknowledged alerts of one level raised from diaries, oldest first."""
    marks = ",".join("?" for _ in exclude)
    rows = await _all(
        conn,
        f"{_SELECT} WHERE a.patient_id = ? AND a.level = ? AND a.status = 'open'"
        f" AND a.rule NOT IN ({marks}) ORDER BY a.id",
        (patient_id, level, *exclude),
    )
    return [Alert.from_row(r) for r in rows]


async def link_diary(conn: aiosqlite.Connection, alert_id: int, occurrence_id: int) -> None:
    await conn.execute(
        "INSERT OR IGNORE INTO alert_diaries (alert_id, occurrence_id) VALUES (?, ?)",
        (alert_id, occurrence_id),
    )


async def has_diary_alerts(conn: aiosqlite.Connection, occurrence_id: int) -> bool:
    r = await _one(
        conn, "SELECT 1 FROM alert_diaries WHERE occurrence_id = ? LIMIT 1", (occurrence_id,)
    )
    return r is not None


async def safety_shown(conn: aiosqlite.Connection, alert_id: int) -> list[dict[str, Any]]:
    """Each showing of the safety text that went with this alert, oldest first: the audit
    entries `safety_text_shown` (bot/escalation/safety.py) that list it, as {at, channel,
    moment, version, lang}."""
    rows = await _all(
        conn,
        "SELECT at, new_value FROM audit WHERE action = 'safety_text_shown'"
        " AND EXISTS (SELECT 1 FROM json_each(audit.new_value, '$.alerts') WHERE value = ?)"
        " ORDER BY id",
        (alert_id,),
    )
    out = []
    for r in rows:
        new = json.loads(r["new_value"])
        out.append(
            {
                "at": r["at"],
                "channel": new.get("channel"),
                "moment": new.get("moment"),
                "version": new.get("safety_text_version"),
                "lang": new.get("lang"),
            }
        )
    return out
