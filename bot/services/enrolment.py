"""Enrolling a subject (study team) and linking a Telegram chat with a one-time code (patient)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosqlite

from bot.clock import from_iso, iso
from bot.delivery.inbound import audit_or_count
from bot.i18n import N_
from bot.services import codes
from bot.services.onboarding import (
    FINISHED,
    NO_PATIENT,
    EnrolError,
    deep_link,
    issue_code,
    materialize,
)
from bot.services.runtime import Runtime
from bot.web import links
from storage import audit, keys, repo

__all__ = ["EnrolError", "Enrolment", "deep_link", "enroll", "materialize", "reissue", "unlink"]

SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$")
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


@dataclass(frozen=True)
class Enrolment:
    subject: str
    code: str  # "" for a web patient (nothing to redeem)
    link: str | None  # Telegram: the t.me deep link; web: the personal link PUBLIC_URL/p/…
    channel: str = "telegram"


def check_timezone(name: str) -> str:
    known = True
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        known = False
    if not known or ("/" not in name and name != "UTC"):
        raise EnrolError(
            f"unknown time zone: {name!r} (use an IANA name such as Asia/Shanghai)",
            N_("Unknown time zone {name}: use a name such as Asia/Shanghai."),
            name=name,
        )
    return name


async def enroll(
    rt: Runtime,
    subject: str,
    injection_date: date,
    lang: str | None,
    timezone: str,
    prompt_time: time,
    *,
    actor: str = "cli",
    conn: aiosqlite.Connection | None = None,
    channel: str = "telegram",
    phone: str | None = None,
    birth_year: int | None = None,
) -> Enrolment:
    """Create the subject and a fresh one-time code (Telegram) or personal link (web: with the
    patient's phone and year of birth). Raises EnrolError, writing nothing."""
    if not SUBJECT_RE.match(subject):
        raise EnrolError(
            f"bad subject ID {subject!r}: letters, digits, '-' and '_' only",
            N_("Subject IDs use letters, digits, \u2018-\u2019 and \u2018_\u2019 only."),
        )
    check_timezone(timezone)
    web = None
    if channel == "web":
        web = (
            links.check_phone(phone),
            links.check_birth_year(birth_year, rt.local_today(timezone).year),
        )
        links.link_url(rt, "")  # refuses before writing when DIARYBOT_PUBLIC_URL is missing
    elif channel != "telegram":
        raise links.unknown_channel(channel)
    elif phone is not None or birth_year is not None:
        raise EnrolError(
            "a phone and a year of birth are stored for web patients only", links.WEB_ONLY
        )
    if conn is None:
        async with rt.db.transaction() as c:
            return await _enroll(
                rt, c, subject, injection_date, lang, timezone, prompt_time, actor, web
            )
    return await _enroll(rt, conn, subject, injection_date, lang, timezone, prompt_time, actor, web)


async def _enroll(
    rt: Runtime,
    conn: aiosqlite.Connection,
    subject: str,
    injection_date: date,
    lang: str | None,
    timezone: str,
    prompt_time: time,
    actor: str,
    web: tuple[str, int] | None = None,
) -> Enrolment:
    if await repo.patient_by_subject(conn, subject) is not None:
        raise EnrolError(
            f"subject {subject} is already enrolled",
            N_("{subject} is already enrolled."),
            subject=subject,
        )
    now = rt.now()
    cur = await conn.execute(
        "INSERT INTO patients (subject, injection_date, enrolled_on, lang, timezone, prompt_time,"
        " created_at) VALUES (?,?,?,?,?,?,?)",
        (
            subject,
            injection_date.isoformat(),
            rt.local_today(timezone).isoformat(),
            lang,
            timezone,
            prompt_time.strftime("%H:%M"),
            iso(now),
        ),
    )
    patient_id = cur.lastrowid or 0
    if web is not None:
        await _audit_enrol(
            conn, now, actor, subject, injection_date, lang, timezone, prompt_time, "web"
        )
        url = await links.enrol_web(rt, conn, patient_id, subject, web[0], web[1], actor)
        return Enrolment(subject, "", url, "web")
    code = await issue_code(rt, conn, patient_id, now)
    await _audit_enrol(conn, now, actor, subject, injection_date, lang, timezone, prompt_time)
    return Enrolment(subject, code, deep_link(rt.bot_username, code))


async def _audit_enrol(
    conn: aiosqlite.Connection,
    now: datetime,
    actor: str,
    subject: str,
    injection_date: date,
    lang: str | None,
    timezone: str,
    prompt_time: time,
    channel: str = "telegram",
) -> None:
    new = {
        "injection_date": injection_date.isoformat(),
        "lang": lang,
        "timezone": timezone,
        "prompt_time": prompt_time.strftime("%H:%M"),
    }
    if channel != "telegram":
        new["channel"] = channel  # the phone and year of birth stay out of the audit trail
    await audit.record(conn, now, actor, "enrol", subject=subject, entity="patient", new=new)


def no_reason() -> EnrolError:
    return EnrolError("a reason is required (--reason)", N_("Please give a reason."))


async def reissue(rt: Runtime, subject: str, *, reason: str, actor: str = "cli") -> Enrolment:
    """A new one-time code for a Telegram subject not linked yet; the old ones stop working.
    The reason goes into the audit entry."""
    if not reason.strip():
        raise no_reason()
    now = rt.now()
    async with rt.db.transaction() as conn:
        patient = await repo.patient_by_subject(conn, subject)
        if patient is None:
            raise EnrolError(f"no subject {subject!r}", NO_PATIENT, subject=subject)
        if patient.status in FINISHED:
            raise EnrolError(
                f"subject {subject} is {patient.status}: no new code",
                FINISHED[patient.status],
                subject=subject,
            )
        if patient.channel != "telegram":
            raise EnrolError(
                f"subject {subject} uses the web diary: reissue their link instead"
                f" (`diarybot subject reissue-link {subject}`)",
                N_("{subject} uses the web diary: give them a new web link instead."),
                subject=subject,
            )
        if patient.chat_id is not None:
            raise EnrolError(
                f"subject {subject} is linked to a Telegram account; if it is lost or not"
                f" theirs, run `diarybot subject unlink {subject}` first",
                N_(
                    "{subject} is linked to a Telegram account. If it is lost or not theirs, "
                    "unlink it first."
                ),
                subject=subject,
            )
        revoked = await repo.revoke_codes(conn, patient.id, now)
        code = await issue_code(rt, conn, patient.id, now)
        await audit.record(
            conn,
            now,
            actor,
            "code_reissue",
            subject=subject,
            entity="enrolment_code",
            new={"revoked": revoked, "valid_hours": rt.study.code_valid_hours},
            reason=reason.strip(),
        )
    return Enrolment(subject, code, deep_link(rt.bot_username, code))


async def unlink(rt: Runtime, subject: str, *, reason: str, actor: str = "cli") -> None:
    """Detach a lost or hijacked Telegram account from a subject (see repo.unlink_patient)."""
    if not reason.strip():
        raise no_reason()
    now = rt.now()
    async with rt.db.transaction() as conn:
        patient = await repo.patient_by_subject(conn, subject)
        if patient is None:
            raise EnrolError(f"no subject {subject!r}", NO_PATIENT, subject=subject)
        if patient.chat_id is None:
            raise EnrolError(
                f"subject {subject} is not linked to a Telegram account",
                N_("{subject} is not linked to a Telegram account."),
                subject=subject,
            )
        await repo.unlink_patient(conn, patient.id)
        await repo.revoke_codes(conn, patient.id, now)
        await audit.record(
            conn,
            now,
            actor,
            "unlink",
            subject=subject,
            entity="patient",
            old={"chat_id": patient.chat_id, "user_id": patient.user_id, "status": patient.status},
            new="unlinked",
            reason=reason.strip(),
        )


@dataclass(frozen=True)
class LinkResult:
    status: str  # ok | wrong | locked | expired | used | already
    patient: repo.Patient | None = None
    locked_until: datetime | None = None


async def link_chat(rt: Runtime, chat_id: int, user_id: int, code_text: str) -> LinkResult:
    """Redeem a code for this private chat. Wrong codes count towards a 15-minute lockout."""
    now = rt.now()
    async with rt.db.transaction() as conn:
        existing = await repo.patient_by_user(conn, user_id)
        if existing is not None:
            return LinkResult("already", existing)
        attempt = await repo.code_attempt(conn, chat_id)
        if attempt and attempt["locked_until"] and from_iso(attempt["locked_until"]) > now:
            return LinkResult("locked", locked_until=from_iso(attempt["locked_until"]))
        row = await repo.code_by_hash(
            conn, codes.code_hash(code_text, keys.for_conn(conn)), codes.legacy_hash(code_text)
        )
        status = "ok"
        if row is None:
            status = "wrong"
        elif row["used_at"] is not None:
            status = "used"
        elif row["revoked_at"] is not None or from_iso(row["expires_at"]) <= now:
            status = "expired"
        if status != "ok":
            failures = (attempt["failures"] if attempt else 0) + 1
            locked = iso(now + LOCKOUT) if failures >= MAX_FAILURES else None
            await conn.execute(
                "INSERT INTO code_attempts (chat_id, failures, locked_until) VALUES (?,?,?)"
                " ON CONFLICT (chat_id) DO UPDATE SET failures = excluded.failures,"
                " locked_until = excluded.locked_until",
                (chat_id, 0 if locked else failures, locked),
            )
            await audit_or_count(conn, now, f"chat:{chat_id}", "code_refused", new=status)
            if locked:
                return LinkResult("locked", locked_until=from_iso(locked))
            return LinkResult(status)
        patient = await repo.patient_by_id(conn, row["patient_id"])
        assert patient is not None
        if patient.chat_id is not None or patient.status in ("withdrawn", "completed"):
            return LinkResult("used")
        await conn.execute(
            "UPDATE enrolment_codes SET used_at = ? WHERE code_hash = ?",
            (iso(now), row["code_hash"]),
        )
        # A paused patient whose account was unlinked stays paused on the new account.
        await conn.execute(
            "UPDATE patients SET chat_id = ?, user_id = ?, unreachable = 0,"
            " status = CASE WHEN status = 'invited' THEN 'active' ELSE status END WHERE id = ?",
            (chat_id, user_id, patient.id),
        )
        await conn.execute("DELETE FROM code_attempts WHERE chat_id = ?", (chat_id,))
        await materialize(rt, conn, patient, now)
        await audit.record(
            conn,
            now,
            f"patient:{patient.subject}",
            "link",
            subject=patient.subject,
            entity="patient",
            new="active",
        )
        linked = await repo.patient_by_id(conn, patient.id)
    return LinkResult("ok", linked)
