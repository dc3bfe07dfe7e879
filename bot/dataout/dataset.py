"""What leaves the building: the study data read once, from a consistent snapshot, as plain rows.

Exports and charts never read the live connection: a separate read-only connection inside one
read transaction sees a consistent state of the WAL database while the bot keeps writing, and
never sees half of another task's transaction on the shared connection.

Privacy is decided here, once, for every export format: subjects are known by their study
subject ID only; Telegram chat and user ids, staff names and enrolment codes are never read.
Staff actors in the audit trail become pseudonyms (STAFF-01, STAFF-02, … in the order staff
were added), so an export cannot be joined back to a Telegram account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import aiosqlite

from bot.clock import from_iso
from bot.domain.study import Study
from bot.domain.textsafety import strip_xml_forbidden
from bot.services.study_versions import study_of
from storage import exports, versions
from storage.exports import snapshot as snapshot  # callers open their snapshot here

# Occurrence status → the status an export shows. An occurrence still waiting for its window to
# close (scheduled, prompted, reminded) is "open": not missed yet, not data yet.
EXPORT_STATUS = {
    "completed": "completed",
    "missed": "missed",
    "paused": "paused",
    "withdrawn": "withdrawn",
    "scheduled": "open",
    "prompted": "open",
    "reminded": "open",
}
STATUSES = ("completed", "incomplete", "missed", "paused", "withdrawn", "open")
# A diary that closed unsubmitted with answers (window over, patient paused or withdrawn) is
# "incomplete" whatever its occurrence status: its answers so far are data (migration 0007).
INCOMPLETE = "incomplete"


class UnknownSubject(LookupError):
    """The export or chart names a subject that is not enrolled."""


@dataclass(frozen=True)
class AuditRec:
    """One audit entry about one item of one diary (answer, change, removal, correction)."""

    id: int
    at: datetime
    user: str  # pseudonymous: RP-001, system, cli, STAFF-01
    action: str
    old: str | None
    new: str | None
    reason: str | None
    # An electronic signature over this entry (a signed site correction): signer, meaning.
    signed_by: str | None = None
    signed_meaning: str | None = None


@dataclass(frozen=True)
class Answer:
    item: str
    value: str
    answered_at: datetime
    submitted_at: datetime | None


@dataclass(frozen=True)
class Diary:
    """One scheduled diary (an occurrence) that has opened: answered, missed, paused…"""

    key: str
    phase: str
    form: str
    study_day: int
    local_date: date
    status: str  # one of STATUSES
    submitted_at: datetime | None
    answers: tuple[Answer, ...]  # submitted answers only, in study item order
    status_audit: AuditRec | None = None  # the entry that completed or closed the diary
    study_version: int | None = None  # submitted under (None: not submitted, or unversioned)
    # item code → its audit entries in order, including answers changed or dropped before
    # submission and corrections after it (study item order).
    history: dict[str, tuple[AuditRec, ...]] = field(default_factory=dict)

    @property
    def instance(self) -> str:
        """Which diary of its phase: the study day ("3"), or for a diary asked under an earlier
        Day 0 the study day and its date ("3@2027-01-13"), unique per subject and phase."""
        return self.key.split(":", 1)[1]

    def value(self, item: str) -> str | None:
        return next((a.value for a in self.answers if a.item == item), None)


@dataclass(frozen=True)
class Subject:
    subject: str
    injection_date: date
    timezone: str
    status: str
    lang: str | None  # the language the patient answered in
    diaries: tuple[Diary, ...]
    alerts: tuple[tuple[int, str], ...] = ()  # (study day, level)


@dataclass(frozen=True)
class User:
    """An author of audit entries, as an export may show it."""

    oid: str
    kind: str  # subject | staff | system
    role: str | None = None


@dataclass(frozen=True)
class Dataset:
    study_id: str
    created_at: datetime
    subjects: tuple[Subject, ...]
    users: tuple[User, ...] = field(default_factory=tuple)
    since: date | None = None
    # (version, its definition) of every study file the bot ran with, and the running one;
    # empty when the database predates versioning (then the given study is the only one)
    versions: tuple[tuple[int, Study], ...] = ()
    current_version: int | None = None


async def staff_pseudonyms(conn: aiosqlite.Connection) -> dict[int, tuple[str, str]]:
    """telegram_id → (pseudonym, role), numbered in the order staff were added (stable)."""
    rows = await exports.staff_roles(conn)
    return {tid: (f"STAFF-{i:02d}", role) for i, (tid, role) in enumerate(rows, 1)}


def pseudonym(actor: str, staff: dict[int, tuple[str, str]]) -> str:
    """An audit actor as an export may name it: never a Telegram id."""
    kind, _, rest = actor.partition(":")
    if kind == "patient" and rest:
        return rest
    if kind == "staff":
        known = staff.get(int(rest)) if rest.lstrip("-").isdigit() else None
        return known[0] if known else "STAFF-UNKNOWN"
    if kind in ("system", "cli"):  # "cli:<who asked>" may carry a name: keep only "cli"
        return kind
    return "other"


def _audit(row: aiosqlite.Row, staff: dict[int, tuple[str, str]]) -> AuditRec:
    return AuditRec(
        id=row["id"],
        at=_parse_at(row["at"]),
        user=pseudonym(row["actor"], staff),
        action=row["action"],
        old=_clean(row["old_value"]),
        new=_clean(row["new_value"]),
        reason=_clean(row["reason"]),
    )


def _clean(text: str | None) -> str | None:
    """No character XML 1.0 forbids leaves in an export (stored before input refused them)."""
    return None if text is None else strip_xml_forbidden(text)


def _parse_at(text: str) -> datetime:
    return from_iso(text) if text.endswith("Z") else datetime.fromisoformat(text)


async def _history(
    conn: aiosqlite.Connection, subject: str, staff: dict[int, tuple[str, str]]
) -> tuple[dict[str, list[AuditRec]], dict[str, AuditRec]]:
    """A subject's audit entries per answer ("daily:3/PAIN") and per diary status change."""
    per_item: dict[str, list[AuditRec]] = {}
    per_diary: dict[str, AuditRec] = {}
    for r in await exports.subject_audit(conn, subject):
        entity = r["entity"]
        if r["action"] == "e_signature":  # signs the correction just before it
            recs = per_item.get(entity)
            if recs:
                meaning = json.loads(r["new_value"] or "{}").get("meaning")
                recs[-1] = replace(
                    recs[-1], signed_by=pseudonym(r["actor"], staff), signed_meaning=meaning
                )
            continue
        if "/" in entity:
            per_item.setdefault(entity, []).append(_audit(r, staff))
        elif r["action"] in ("diary_submitted", "diary_missed", "diary_incomplete"):
            per_diary[entity] = _audit(r, staff)
    return per_item, per_diary


async def _alerts(conn: aiosqlite.Connection, patient_id: int) -> tuple[tuple[int, str], ...]:
    """(study day, level) of the patient's alerts, when the escalation tables exist."""
    if not await exports.table_exists(conn, "alerts"):
        return ()
    return tuple(await exports.alert_days(conn, patient_id))


async def _subject(
    conn: aiosqlite.Connection,
    study: Study,
    p: aiosqlite.Row,
    now: datetime,
    since: date | None,
    staff: dict[int, tuple[str, str]] | None,
    versioned: bool = False,
    incomplete: bool = True,
) -> Subject:
    """One subject's opened diaries, submitted answers and (with `staff`) their history."""
    occ_rows = await exports.opened_occurrences(conn, p["id"], now, since, versioned, incomplete)
    answer_rows = await exports.data_answers(conn, p["id"], incomplete)
    item_order = {it.code: i for i, it in enumerate(study.items)}
    by_occ: dict[int, list[aiosqlite.Row]] = {}
    for a in sorted(answer_rows, key=lambda a: item_order.get(a["item"], len(item_order))):
        by_occ.setdefault(a["occurrence_id"], []).append(a)
    history: dict[str, list[AuditRec]] = {}
    status_audit: dict[str, AuditRec] = {}
    if staff is not None:
        history, status_audit = await _history(conn, p["subject"], staff)
    diaries = []
    for o in occ_rows:
        key = o["key"]
        diaries.append(
            Diary(
                key=key,
                phase=o["phase"],
                form=o["form"],
                study_day=o["study_day"],
                local_date=date.fromisoformat(o["local_date"]),
                status=INCOMPLETE
                if o["incomplete_at"]
                else EXPORT_STATUS.get(o["status"], o["status"]),
                submitted_at=from_iso(o["submitted_at"]) if o["submitted_at"] else None,
                answers=tuple(
                    Answer(
                        item=a["item"],
                        value=strip_xml_forbidden(a["value"]),
                        answered_at=from_iso(a["answered_at"]),
                        submitted_at=from_iso(a["submitted_at"]) if a["submitted_at"] else None,
                    )
                    for a in by_occ.get(o["id"], [])
                ),
                status_audit=status_audit.get(key),
                study_version=o["study_version"],
                history={
                    it.code: tuple(history[f"{key}/{it.code}"])
                    for it in study.items
                    if f"{key}/{it.code}" in history
                },
            )
        )
    return Subject(
        subject=p["subject"],
        injection_date=date.fromisoformat(p["injection_date"]),
        timezone=p["timezone"],
        status=p["status"],
        lang=p["lang"],
        diaries=tuple(diaries),
        alerts=await _alerts(conn, p["id"]),
    )


async def load(
    conn: aiosqlite.Connection,
    study: Study,
    now: datetime,
    *,
    subject: str | None = None,
    since: date | None = None,
    with_history: bool = True,
) -> Dataset:
    """Every opened diary of every (or one) subject, with submitted answers and their history.

    Diaries count from the day the window opened (`opens_at <= now`); `since` keeps diaries whose
    local date is on or after it. Answers of a diary still open are drafts, not data: they stay
    in the audit trail and out of the export; a diary that closed unsubmitted keeps its answers
    as data, with the status "incomplete".
    """
    prows = await exports.patients(conn, subject)
    if subject is not None and not prows:
        raise UnknownSubject(subject)
    staff = await staff_pseudonyms(conn)
    history_staff = staff if with_history else None
    versioned = await exports.table_exists(conn, "study_versions")
    # incomplete diaries (migration 0007); a file from before it has none
    incomplete = await exports.has_incomplete_diaries(conn)
    subjects = [
        await _subject(conn, study, p, now, since, history_staff, versioned, incomplete)
        for p in prows
    ]
    known: tuple[tuple[int, Study], ...] = ()
    current = None
    if versioned:
        known = tuple(
            (v.version, study_of(v.content, study)) for v in await versions.all_versions(conn)
        )
        current = await versions.current(conn)
    users = [User("system", "system"), User("cli", "system")]
    users += [User(s["subject"], "subject") for s in prows]
    users += [User(name, "staff", role) for name, role in staff.values()]
    users += [User("STAFF-UNKNOWN", "staff"), User("other", "system")]
    return Dataset(
        study_id=study.id,
        created_at=now,
        subjects=tuple(subjects),
        users=tuple(users),
        since=since,
        versions=known,
        current_version=current,
    )
