"""Row types and the queries the services share. SQL lives here, not in handlers."""

from __future__ import annotations

import json
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


async def timezone_of_subject(conn: aiosqlite.Connection, subject: str) -> str | None:
    """The time zone of the patient with this subject ID, if enrolled."""
    r = await _one(conn, "SELECT timezone FROM patients WHERE subject = ?", (subject,))
    return None if r is None else str(r["timezone"])


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


async def all_staff(conn: aiosqlite.Connection) -> list[Staff]:
    """Every staff member, active ones first, then removed ones (`diarybot staff list`)."""
    rows = await _all(conn, "SELECT * FROM staff ORDER BY active DESC, telegram_id")
    return [Staff.from_row(r) for r in rows]


async def staff_record(conn: aiosqlite.Connection, telegram_id: int) -> dict[str, Any] | None:
    """role, name, lang and active of a staff member, removed or not (an audit entry's `old`)."""
    r = await _one(
        conn, "SELECT role, name, lang, active FROM staff WHERE telegram_id = ?", (telegram_id,)
    )
    return dict(r) if r else None


async def save_staff(
    conn: aiosqlite.Connection, telegram_id: int, role: str, name: str, lang: str, now: datetime
) -> None:
    """Add a staff member, or update (and reactivate) the one with this Telegram id."""
    await conn.execute(
        "INSERT INTO staff (telegram_id, role, name, lang, active, created_at)"
        " VALUES (?,?,?,?,1,?) ON CONFLICT (telegram_id) DO UPDATE SET"
        " role = excluded.role,"
        " name = excluded.name, lang = excluded.lang, active = 1",
        (telegram_id, role, name, lang, iso(now)),
    )


async def deactivate_staff(conn: aiosqlite.Connection, telegram_id: int) -> bool:
    """Remove an active staff member (access ends at once); False if there was none."""
    cur = await conn.execute(
        "UPDATE staff SET active = 0 WHERE telegram_id = ? AND active = 1", (telegram_id,)
    )
    return bool(cur.rowcount)


async def mark_unreachable(conn: aiosqlite.Connection, chat_id: int) -> bool:
    """Flag the patient with this chat unreachable (Telegram refused: blocked); False if no
    patient has this chat or the flag was already set."""
    cur = await conn.execute(
        "UPDATE patients SET unreachable = 1 WHERE chat_id = ? AND unreachable = 0", (chat_id,)
    )
    return bool(cur.rowcount)


async def subject_by_chat(conn: aiosqlite.Connection, chat_id: int) -> str | None:
    """The subject of the patient with this Telegram chat, if any."""
    r = await _one(conn, "SELECT subject FROM patients WHERE chat_id = ?", (chat_id,))
    return str(r["subject"]) if r else None


async def staff_including_removed(conn: aiosqlite.Connection, telegram_id: int) -> Staff | None:
    """The staff member with this Telegram id, active or removed."""
    r = await _one(conn, "SELECT * FROM staff WHERE telegram_id = ?", (telegram_id,))
    return Staff.from_row(r) if r else None


async def set_staff_lang(conn: aiosqlite.Connection, telegram_id: int, lang: str) -> None:
    """A staff member's language."""
    await conn.execute("UPDATE staff SET lang = ? WHERE telegram_id = ?", (lang, telegram_id))


async def all_patients(conn: aiosqlite.Connection) -> list[Patient]:
    """Every patient, by subject."""
    rows = await _all(conn, "SELECT * FROM patients ORDER BY subject")
    return [Patient.from_row(r) for r in rows]


async def patients_in(conn: aiosqlite.Connection, statuses: tuple[str, ...]) -> list[Patient]:
    """The patients in one of `statuses` (active, paused, …), by subject."""
    marks = ",".join("?" * len(statuses))
    rows = await _all(
        conn, f"SELECT * FROM patients WHERE status IN ({marks}) ORDER BY subject", statuses
    )
    return [Patient.from_row(r) for r in rows]


async def patients_by_subject_nocase(conn: aiosqlite.Connection, subject: str) -> list[Patient]:
    """The patients whose subject is `subject` ignoring case (`rp-001` finds RP-001)."""
    rows = await _all(conn, "SELECT * FROM patients WHERE subject = ? COLLATE NOCASE", (subject,))
    return [Patient.from_row(r) for r in rows]


async def patient_id_by_chat(conn: aiosqlite.Connection, chat_id: int) -> int | None:
    """The id of the patient with this Telegram chat, if any."""
    r = await _one(conn, "SELECT id FROM patients WHERE chat_id = ?", (chat_id,))
    return int(r["id"]) if r is not None else None


async def insert_patient(
    conn: aiosqlite.Connection,
    subject: str,
    injection_date: date,
    enrolled_on: date,
    lang: str | None,
    timezone: str,
    prompt_time: time,
    now: datetime,
) -> int:
    """A newly enrolled patient (status 'invited' by the schema default); returns the id."""
    cur = await conn.execute(
        "INSERT INTO patients (subject, injection_date, enrolled_on, lang, timezone, prompt_time,"
        " created_at) VALUES (?,?,?,?,?,?,?)",
        (
            subject,
            injection_date.isoformat(),
            enrolled_on.isoformat(),
            lang,
            timezone,
            prompt_time.strftime("%H:%M"),
            iso(now),
        ),
    )
    return cur.lastrowid or 0


async def link_patient(
    conn: aiosqlite.Connection, patient_id: int, chat_id: int, user_id: int
) -> None:
    """Attach a Telegram account (a redeemed code). An invited patient becomes active; a
    paused patient whose account was unlinked stays paused on the new account."""
    await conn.execute(
        "UPDATE patients SET chat_id = ?, user_id = ?, unreachable = 0,"
        " status = CASE WHEN status = 'invited' THEN 'active' ELSE status END WHERE id = ?",
        (chat_id, user_id, patient_id),
    )


#: The patient's own settings `set_patient_setting` may change.
PATIENT_SETTINGS = ("lang", "prompt_time", "timezone")


async def set_patient_setting(
    conn: aiosqlite.Connection, patient_id: int, column: str, value: str
) -> None:
    """Set one of the patient's own settings (`PATIENT_SETTINGS`: lang, prompt_time as HH:MM,
    timezone)."""
    if column not in PATIENT_SETTINGS:
        raise ValueError(f"not a patient setting: {column}")
    await conn.execute(f"UPDATE patients SET {column} = ? WHERE id = ?", (value, patient_id))


async def code_attempt(conn: aiosqlite.Connection, chat_id: int) -> aiosqlite.Row | None:
    """The wrong-code count of a chat (`code_attempts`): failures, locked_until."""
    r: aiosqlite.Row | None = await _one(
        conn, "SELECT failures, locked_until FROM code_attempts WHERE chat_id = ?", (chat_id,)
    )
    return r


async def save_code_attempt(
    conn: aiosqlite.Connection, chat_id: int, failures: int, locked_until: datetime | None
) -> None:
    """Set the wrong-code count of a chat and when its lockout ends (None: not locked)."""
    await conn.execute(
        "INSERT INTO code_attempts (chat_id, failures, locked_until) VALUES (?,?,?)"
        " ON CONFLICT (chat_id) DO UPDATE SET failures = excluded.failures,"
        " locked_until = excluded.locked_until",
        (chat_id, failures, iso(locked_until) if locked_until else None),
    )


async def clear_code_attempts(conn: aiosqlite.Connection, chat_id: int) -> None:
    """Forget the wrong-code count of a chat (its code was redeemed)."""
    await conn.execute("DELETE FROM code_attempts WHERE chat_id = ?", (chat_id,))


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


async def delete_future_scheduled(
    conn: aiosqlite.Connection, patient_id: int, now: datetime
) -> int:
    """Remove the patient's 'scheduled' occurrences whose window opens after `now` (they are
    about to be recomputed); returns how many."""
    cur = await conn.execute(
        "DELETE FROM occurrences WHERE patient_id = ? AND status = 'scheduled' AND opens_at > ?",
        (patient_id, iso(now)),
    )
    return cur.rowcount


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


async def answer_value(conn: aiosqlite.Connection, occ_id: int, item: str) -> str | None:
    """The stored answer to one item of a diary, if any."""
    r = await _one(
        conn, "SELECT value FROM answers WHERE occurrence_id = ? AND item = ?", (occ_id, item)
    )
    return str(r["value"]) if r is not None else None


async def save_answer(
    conn: aiosqlite.Connection, occ_id: int, item: str, value: str, now: datetime
) -> None:
    """Store (or replace) the answer to one item of a diary, answered at `now`."""
    await conn.execute(
        "INSERT INTO answers (occurrence_id, item, value, answered_at) VALUES (?,?,?,?)"
        " ON CONFLICT (occurrence_id, item) DO UPDATE SET value = excluded.value,"
        " answered_at = excluded.answered_at",
        (occ_id, item, value, iso(now)),
    )


async def delete_answer(conn: aiosqlite.Connection, occ_id: int, item: str) -> None:
    """Remove the answer to one item of a diary (the audit trail keeps what it was)."""
    await conn.execute("DELETE FROM answers WHERE occurrence_id = ? AND item = ?", (occ_id, item))


async def save_corrected_answer(
    conn: aiosqlite.Connection, occ_id: int, item: str, value: str, now: datetime
) -> None:
    """A site correction of one answer of a diary (`diarybot correct`). A new answer row is
    answered and submitted at `now`; an existing one keeps its times, only the value changes."""
    await conn.execute(
        "INSERT INTO answers (occurrence_id, item, value, answered_at, submitted_at)"
        " VALUES (?,?,?,?,?) ON CONFLICT (occurrence_id, item) DO UPDATE SET"
        " value = excluded.value",
        (occ_id, item, value, iso(now), iso(now)),
    )


async def diary_session(conn: aiosqlite.Connection, patient_id: int) -> aiosqlite.Row | None:
    """The patient's place in the diary they are filling in (`diary_sessions`), if any."""
    r: aiosqlite.Row | None = await _one(
        conn, "SELECT * FROM diary_sessions WHERE patient_id = ?", (patient_id,)
    )
    return r


async def diary_place(
    conn: aiosqlite.Connection, patient_id: int, now: datetime
) -> tuple[OccRow, str | None, bool, dict[str, str]] | None:
    """In one query: the patient's open diary (as `open_occurrence`), the item their session
    on it asks (None: no session on it, or the review screen), whether they are revisiting,
    and the answers stored so far. None: no diary is open."""
    r = await _one(
        conn,
        "SELECT o.*, s.occurrence_id AS s_occ, s.item AS s_item, s.revisiting AS s_revisiting,"
        " (SELECT json_group_object(a.item, a.value) FROM answers a"
        " WHERE a.occurrence_id = o.id) AS s_answers"
        " FROM occurrences o LEFT JOIN diary_sessions s ON s.patient_id = o.patient_id"
        " AND s.occurrence_id = o.id"
        " WHERE o.patient_id = ? AND o.status IN ('scheduled','prompted','reminded')"
        " AND o.opens_at <= ? AND o.closes_at > ? ORDER BY o.opens_at LIMIT 1",
        (patient_id, iso(now), iso(now)),
    )
    if r is None:
        return None
    answers = {str(k): str(v) for k, v in json.loads(r["s_answers"] or "{}").items()}
    item = r["s_item"] if r["s_occ"] is not None else None
    return OccRow.from_row(r), item, bool(r["s_revisiting"]), answers


async def save_diary_session(
    conn: aiosqlite.Connection,
    patient_id: int,
    occ_id: int,
    item: str | None,
    revisiting: bool,
    now: datetime,
) -> None:
    """Set the patient's place in a diary: the item asked (None: the review screen)."""
    await conn.execute(
        "INSERT INTO diary_sessions (patient_id, occurrence_id, item, revisiting, updated_at)"
        " VALUES (?,?,?,?,?) ON CONFLICT (patient_id) DO UPDATE SET"
        " occurrence_id = excluded.occurrence_id, item = excluded.item,"
        " revisiting = excluded.revisiting, updated_at = excluded.updated_at",
        (patient_id, occ_id, item, int(revisiting), iso(now)),
    )


async def windows_to_close(conn: aiosqlite.Connection, now: datetime) -> list[aiosqlite.Row]:
    """Open diaries whose window has closed by `now`: id, key, status, subject, pid (the
    patient's id) and `answered` (1 if any answer was stored)."""
    return await _all(
        conn,
        "SELECT o.id, o.key, o.status, p.subject, p.id AS pid,"
        " EXISTS (SELECT 1 FROM answers a WHERE a.occurrence_id = o.id) AS answered"
        " FROM occurrences o JOIN patients p ON p.id = o.patient_id"
        " WHERE o.status IN ('scheduled', 'prompted', 'reminded') AND o.closes_at <= ?",
        (iso(now),),
    )


async def mark_missed(conn: aiosqlite.Connection, occ_id: int, patient_id: int) -> None:
    """A diary's window closed unsubmitted: status missed, and the patient's place in it is
    forgotten."""
    await conn.execute("UPDATE occurrences SET status = 'missed' WHERE id = ?", (occ_id,))
    await conn.execute(
        "DELETE FROM diary_sessions WHERE patient_id = ? AND occurrence_id = ?",
        (patient_id, occ_id),
    )


async def closed_without_rules(conn: aiosqlite.Connection) -> list[int]:
    """Ids of diaries that closed incomplete and have not had the rules run on them yet."""
    rows = await _all(
        conn,
        "SELECT id FROM occurrences WHERE incomplete_at IS NOT NULL AND rules_run_at IS NULL",
    )
    return [int(r["id"]) for r in rows]


async def mark_rules_run(conn: aiosqlite.Connection, occ_id: int, now: datetime) -> None:
    """The rules have been run on this closed, incomplete diary (once)."""
    await conn.execute("UPDATE occurrences SET rules_run_at = ? WHERE id = ?", (iso(now), occ_id))


async def mark_submitted(conn: aiosqlite.Connection, occ_id: int, now: datetime) -> None:
    """The patient submitted the diary: its answers and the diary itself are submitted now, and
    its status is 'completed'."""
    await conn.execute(
        "UPDATE answers SET submitted_at = ? WHERE occurrence_id = ?", (iso(now), occ_id)
    )
    await conn.execute(
        "UPDATE occurrences SET status = 'completed', submitted_at = ? WHERE id = ?",
        (iso(now), occ_id),
    )


async def mark_incomplete(conn: aiosqlite.Connection, occ_id: int, now: datetime) -> None:
    """The diary closed unsubmitted with answers: incomplete now, the rules still to run."""
    await conn.execute(
        "UPDATE occurrences SET incomplete_at = ?, rules_run_at = NULL WHERE id = ?",
        (iso(now), occ_id),
    )


async def clear_diary_session(conn: aiosqlite.Connection, patient_id: int) -> None:
    """Forget where the patient is in a diary (whichever diary it was)."""
    await conn.execute("DELETE FROM diary_sessions WHERE patient_id = ?", (patient_id,))


NOTIFY_COLUMNS = ("opens_at", "remind_at", "prompted_at", "reminded_at")


async def due_to_notify(
    conn: aiosqlite.Connection, status: str, due_col: str, now: datetime
) -> list[aiosqlite.Row]:
    """Diaries in `status` whose `due_col` time (opens_at: the prompt, remind_at: the
    reminder) has come, still open, of active patients, oldest first: the occurrence's columns
    and `pid` (the patient's id).

    A prompt that went out after the reminder time (late link, catch-up after downtime) is its
    own reminder: such a diary is not due for a reminder (no second message in the same breath).
    """
    assert due_col in NOTIFY_COLUMNS
    n = iso(now)
    return await _all(
        conn,
        f"SELECT o.*, p.id AS pid FROM occurrences o JOIN patients p ON p.id = o.patient_id"
        f" WHERE o.status = ? AND o.{due_col} <= ? AND o.closes_at > ?"
        f" AND (o.prompted_at IS NULL OR o.prompted_at < o.remind_at)"
        f" AND p.status = 'active'"
        f" ORDER BY o.{due_col}",
        (status, n, n),
    )


async def mark_notified(
    conn: aiosqlite.Connection, occ_id: int, new_status: str, stamp_col: str, now: datetime
) -> None:
    """A diary's prompt or reminder was queued: its new status, and when (`stamp_col`)."""
    assert stamp_col in NOTIFY_COLUMNS
    await conn.execute(
        f"UPDATE occurrences SET status = ?, {stamp_col} = ? WHERE id = ?",
        (new_status, iso(now), occ_id),
    )


async def next_change(conn: aiosqlite.Connection, now: datetime) -> datetime | None:
    """The earliest moment after `now` a diary changes (a scheduled one of an active patient
    opens, a prompted one is due for its reminder, an open one closes), if any: the
    scheduler's next wake."""
    n = iso(now)
    row = await _one(
        conn,
        "SELECT MIN(t) FROM ("
        " SELECT MIN(o.opens_at) AS t FROM occurrences o JOIN patients p ON p.id = o.patient_id"
        "  WHERE o.status = 'scheduled' AND o.opens_at > ? AND p.status = 'active'"
        " UNION ALL SELECT MIN(remind_at) FROM occurrences"
        "  WHERE status = 'prompted' AND remind_at > ?"
        " UNION ALL SELECT MIN(closes_at) FROM occurrences"
        "  WHERE status IN ('scheduled', 'prompted', 'reminded') AND closes_at > ?)",
        (n, n, n),
    )
    return from_iso(row[0]) if row and row[0] else None


async def next_planned(conn: aiosqlite.Connection, patient_id: int, now: datetime) -> OccRow | None:
    """The patient's next diary to open after `now` (scheduled, or paused), if any."""
    r = await _one(
        conn,
        "SELECT * FROM occurrences WHERE patient_id = ? AND status IN ('scheduled', 'paused')"
        " AND opens_at > ? ORDER BY opens_at LIMIT 1",
        (patient_id, iso(now)),
    )
    return OccRow.from_row(r) if r else None


async def missed_since_completed(
    conn: aiosqlite.Connection, patient_id: int
) -> list[tuple[str, int]]:
    """(key, study day) of the patient's diaries missed since their last completed one, oldest
    first: the current run of misses."""
    rows = await _all(
        conn,
        "SELECT key, study_day FROM occurrences WHERE patient_id = ? AND status = 'missed'"
        " AND opens_at > COALESCE((SELECT MAX(opens_at) FROM occurrences WHERE patient_id = ?"
        " AND status = 'completed'), '') ORDER BY opens_at",
        (patient_id, patient_id),
    )
    return [(r[0], r[1]) for r in rows]


async def diary_states(conn: aiosqlite.Connection, patient_id: int) -> list[tuple[str, str, str]]:
    """(local date, phase, status) of every diary of the patient (compliance)."""
    rows = await _all(
        conn,
        "SELECT local_date, phase, status FROM occurrences WHERE patient_id = ?",
        (patient_id,),
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def diary_states_in(
    conn: aiosqlite.Connection, statuses: tuple[str, ...]
) -> list[tuple[int, str, str, str]]:
    """(patient id, local date, phase, status) of every diary of the patients in `statuses`."""
    marks = ",".join("?" * len(statuses))
    rows = await _all(
        conn,
        "SELECT o.patient_id, o.local_date, o.phase, o.status FROM occurrences o"
        f" JOIN patients p ON p.id = o.patient_id WHERE p.status IN ({marks})",
        statuses,
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def data_answers(conn: aiosqlite.Connection, patient_id: int) -> list[aiosqlite.Row]:
    """The answers of the patient's diaries that are data (submitted, or closed incomplete),
    by study day: id, key, study_day, phase (of the diary), item, value."""
    return await _all(
        conn,
        "SELECT o.id, o.key, o.study_day, o.phase, a.item, a.value FROM occurrences o"
        " JOIN answers a ON a.occurrence_id = o.id"
        " WHERE o.patient_id = ? AND (o.status = 'completed' OR o.incomplete_at IS NOT NULL)"
        " ORDER BY o.study_day, o.id",
        (patient_id,),
    )


async def alert_ids_of(conn: aiosqlite.Connection, patient_id: int) -> list[int]:
    """The ids of every alert raised for the patient, oldest first."""
    rows = await _all(conn, "SELECT id FROM alerts WHERE patient_id = ? ORDER BY id", (patient_id,))
    return [int(r["id"]) for r in rows]


async def diary_session_updated_at(conn: aiosqlite.Connection, patient_id: int) -> datetime | None:
    """When the patient last moved in the diary they are filling in, if they are."""
    r = await _one(
        conn, "SELECT updated_at FROM diary_sessions WHERE patient_id = ?", (patient_id,)
    )
    return from_iso(r["updated_at"]) if r is not None else None


async def submitted_on_day(
    conn: aiosqlite.Connection, patient_id: int, study_day: int
) -> OccRow | None:
    """The patient's diary of this study day that is data: submitted (completed), or closed
    incomplete with its answers kept (a site correction may change either). A submitted one
    first, should a re-anchor have put two diaries on one study day."""
    r = await _one(
        conn,
        "SELECT * FROM occurrences WHERE patient_id = ? AND study_day = ?"
        " AND (status = 'completed' OR incomplete_at IS NOT NULL)"
        " ORDER BY status = 'completed' DESC, id",
        (patient_id, study_day),
    )
    return OccRow.from_row(r) if r else None


async def data_diaries_after(
    conn: aiosqlite.Connection, patient_id: int, study_day: int, limit: int
) -> list[OccRow]:
    """The patient's next `limit` diaries that are data (submitted, or closed incomplete) after
    `study_day`, baseline diaries (before Day 0) left out, by study day."""
    rows = await _all(
        conn,
        "SELECT * FROM occurrences WHERE patient_id = ? AND study_day > ? AND study_day >= 0"
        " AND (status = 'completed' OR incomplete_at IS NOT NULL)"
        " ORDER BY study_day LIMIT ?",
        (patient_id, study_day, limit),
    )
    return [OccRow.from_row(r) for r in rows]


async def data_diaries_from(
    conn: aiosqlite.Connection, patient_id: int, study_day: int | None = None
) -> list[OccRow]:
    """Every diary of the patient that is data (submitted, or closed incomplete) from
    `study_day` on (None: all of them, baseline included), by study day."""
    rows = await _all(
        conn,
        "SELECT * FROM occurrences WHERE patient_id = ? AND study_day >= ?"
        " AND (status = 'completed' OR incomplete_at IS NOT NULL)"
        " ORDER BY study_day, id",
        (patient_id, -(10**9) if study_day is None else study_day),
    )
    return [OccRow.from_row(r) for r in rows]


async def unused_confirmation(
    conn: aiosqlite.Connection, confirmation_id: int, staff_id: int
) -> aiosqlite.Row | None:
    """A follow-up command waiting for this staff member's Confirm tap, not used yet."""
    r: aiosqlite.Row | None = await _one(
        conn,
        "SELECT * FROM followup_confirmations WHERE id = ? AND staff_id = ? AND used_at IS NULL",
        (confirmation_id, staff_id),
    )
    return r


async def use_confirmation(conn: aiosqlite.Connection, confirmation_id: int, now: datetime) -> None:
    """The Confirm tap was taken (it cannot be used again)."""
    await conn.execute(
        "UPDATE followup_confirmations SET used_at = ? WHERE id = ?", (iso(now), confirmation_id)
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


async def move_staff_group(conn: aiosqlite.Connection, old: int, new: int) -> bool:
    """The staff group became a supergroup: `old` -> `new`. False if it was not the group."""
    cur = await conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'staff_group' AND value = ?",
        (str(new), str(old)),
    )
    return bool(cur.rowcount)


# ------------------------------------------------------------------ typed-answer waits
async def pending_input(conn: aiosqlite.Connection, chat_id: int) -> str | None:
    """What kind of typed answer the chat's next text message is (`pending_inputs`), if any."""
    r = await _one(conn, "SELECT kind FROM pending_inputs WHERE chat_id = ?", (chat_id,))
    return None if r is None else r[0]


async def set_pending_input(
    conn: aiosqlite.Connection, chat_id: int, kind: str, now: datetime
) -> None:
    """The chat's next text message is a typed answer of this kind."""
    await conn.execute(
        "INSERT INTO pending_inputs (chat_id, kind, created_at) VALUES (?,?,?)"
        " ON CONFLICT (chat_id) DO UPDATE SET kind = excluded.kind,"
        " created_at = excluded.created_at",
        (chat_id, kind, iso(now)),
    )


async def clear_pending_input(conn: aiosqlite.Connection, chat_id: int) -> None:
    """The chat waits for no typed answer."""
    await conn.execute("DELETE FROM pending_inputs WHERE chat_id = ?", (chat_id,))


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


async def use_code(conn: aiosqlite.Connection, code_hash: str, now: datetime) -> None:
    """Mark a code (by its stored hash) as redeemed now."""
    await conn.execute(
        "UPDATE enrolment_codes SET used_at = ? WHERE code_hash = ?",
        (iso(now), code_hash),
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
