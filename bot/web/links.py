"""Web patients: enrolment on the web channel, personal links, devices, the year-of-birth check.

A personal link is `PUBLIC_URL/p/<token>`: 256 random bits from `secrets`, stored only as its
sha256. The first visit on a device asks for the year of birth; five wrong answers lock the link
(the team gets a compliance alert) until staff reissue it. A device that passed the check gets a
long-lived cookie: another random token, also stored only as its sha256.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
from dataclasses import dataclass

import aiosqlite
import segno

from bot.i18n import N_
from bot.services.onboarding import (
    FINISHED,
    NO_PATIENT,
    EnrolError,
    deep_link,
    issue_code,
    materialize,
)
from bot.services.runtime import Runtime
from storage import audit, repo
from storage import web as store

CHANNELS = ("telegram", "web")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
MAX_TRIES = 5
LOCKED_REASON = N_("Web diary link locked after 5 wrong years of birth")
WEB_ONLY = N_("A phone number and a year of birth are kept for web diary patients only.")
ALREADY_ON = {
    "telegram": N_("{subject} already uses Telegram."),
    "web": N_("{subject} already uses the web diary."),
}


def unknown_channel(channel: str) -> EnrolError:
    return EnrolError(
        f"unknown channel {channel!r}: telegram or web",
        N_("Unknown channel {channel}: choose Telegram or the web diary."),
        channel=channel,
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def check_phone(phone: str | None) -> str:
    value = (phone or "").replace(" ", "").replace("-", "")
    if not E164.match(value):
        raise EnrolError(
            f"bad phone number {phone!r}: use the international E.164 form, e.g. +8613812345678",
            N_("Please give the mobile number in international form, like +8613812345678."),
        )
    return value


def check_birth_year(year: int | None, this_year: int) -> int:
    if year is None or not this_year - 110 <= year <= this_year - 18:
        raise EnrolError(
            f"bad year of birth {year!r}: four digits, an adult's (e.g. 1956)",
            N_("Please give an adult's year of birth as four digits, like 1956."),
        )
    return year


def link_url(rt: Runtime, token: str) -> str:
    if not rt.public_url:
        raise EnrolError(
            "DIARYBOT_PUBLIC_URL is not set: it is the address patients open "
            "(e.g. https://diary.example-hospital.cn), needed for web patients' links",
            N_(
                "The web diary's public address (DIARYBOT_PUBLIC_URL) is not set. Please ask "
                "the administrator."
            ),
        )
    return f"{rt.public_url}/p/{token}"


async def new_link(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient_id: int,
    subject: str,
    actor: str,
    *,
    reason: str | None = None,
) -> str:
    """A fresh personal link for the patient; any earlier one stops working. Returns its URL."""
    now = rt.now()
    token = new_token()
    url = link_url(rt, token)
    revoked = await store.revoke_links(conn, patient_id, now)
    await store.insert_link(conn, patient_id, token_hash(token), now)
    await audit.record(
        conn,
        now,
        actor,
        "web_link_issued" if not revoked else "web_link_reissued",
        subject=subject,
        entity="web_link",
        new={"channel": "web", "revoked": revoked},
        reason=reason,
    )
    return url


async def notify_web_link(
    rt: Runtime, conn: aiosqlite.Connection, patient: repo.Patient, url: str
) -> str:
    """Send the patient their personal link by SMS (bot/channels: the study's `web_link`
    template), queued in `conn`, the transaction that made the link. The coordinator is also
    shown the link and its QR code (CLI, Telegram /enroll). Returns the link."""
    from bot.channels.patients import notify_patient
    from bot.messenger import Priority

    await notify_patient(
        conn,
        rt.now(),
        rt.study,
        patient,
        "web_link",
        telegram_text=None,
        params={"link": url},
        priority=Priority.REPLY,
        ref=f"web_link:{patient.id}",
    )
    return url


async def enrol_web(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient_id: int,
    subject: str,
    phone: str,
    birth_year: int,
    actor: str,
) -> str:
    """Inside the enrolment transaction: a web patient is active at once (no code to redeem);
    their diaries are planned from today. Returns the personal link."""
    await store.set_channel(conn, patient_id, "web", phone, birth_year)
    await store.activate(conn, patient_id)
    patient = await repo.patient_by_id(conn, patient_id)
    assert patient is not None
    await materialize(rt, conn, patient, rt.now())
    url = await new_link(rt, conn, patient_id, subject, actor)
    return await notify_web_link(rt, conn, patient, url)


def no_reason() -> EnrolError:
    return EnrolError("a reason is required (--reason)", N_("Please give a reason."))


async def reissue(rt: Runtime, subject: str, *, reason: str, actor: str = "cli") -> str:
    """Staff: a new link for a web patient, sent by SMS; the old one (and its devices) stop
    working. The reason goes into the audit entry."""
    if not reason.strip():
        raise no_reason()
    async with rt.db.transaction() as conn:
        patient = await repo.patient_by_subject(conn, subject)
        if patient is None:
            raise EnrolError(f"no subject {subject}", NO_PATIENT, subject=subject)
        if patient.channel != "web":
            raise EnrolError(
                f"{subject} is not a web patient (channel {patient.channel})",
                N_("{subject} does not use the web diary."),
                subject=subject,
            )
        if patient.status in FINISHED:
            raise EnrolError(
                f"{subject} is {patient.status}: no link to reissue",
                FINISHED[patient.status],
                subject=subject,
            )
        url = await new_link(rt, conn, patient.id, subject, actor, reason=reason.strip())
        return await notify_web_link(rt, conn, patient, url)


@dataclass(frozen=True)
class ChannelChange:
    subject: str
    channel: str
    link: str | None = None  # web: the new personal link
    code: str | None = None  # telegram: a new one-time code (the patient has no chat yet)
    deep_link: str | None = None


async def change_channel(
    rt: Runtime,
    subject: str,
    channel: str,
    *,
    phone: str | None,
    birth_year: int | None,
    reason: str,
    actor: str = "cli",
) -> ChannelChange:
    """Staff move a patient to the other channel. To the web: phone (and the year of birth,
    unless already known) are required and a link is issued. To Telegram: links are revoked,
    the phone is forgotten and, if no chat is linked yet, a one-time code is issued."""
    if channel not in CHANNELS:
        raise unknown_channel(channel)
    if not reason.strip():
        raise no_reason()
    now = rt.now()
    async with rt.db.transaction() as conn:
        patient = await repo.patient_by_subject(conn, subject)
        if patient is None:
            raise EnrolError(f"no subject {subject}", NO_PATIENT, subject=subject)
        if patient.channel == channel:
            raise EnrolError(
                f"{subject} is already on the {channel} channel",
                ALREADY_ON[channel],
                subject=subject,
            )
        if patient.status in FINISHED:
            raise EnrolError(
                f"{subject} is {patient.status}", FINISHED[patient.status], subject=subject
            )
        result = ChannelChange(subject, channel)
        if channel == "web":
            number = check_phone(phone)
            year = (
                birth_year if birth_year is not None else await store.birth_year(conn, patient.id)
            )
            year = check_birth_year(year, rt.local_today(patient.timezone).year)
            # One channel at a time: the Telegram chat is unlinked (a move back issues a code).
            if patient.chat_id is not None:
                await repo.unlink_patient(conn, patient.id)
            await store.set_channel(conn, patient.id, "web", number, year)
            current = await repo.patient_by_id(conn, patient.id)
            assert current is not None
            if current.status == "invited":
                await store.activate(conn, patient.id)
                await materialize(rt, conn, current, now)
            url = await new_link(rt, conn, patient.id, subject, actor, reason=reason.strip())
            updated = await repo.patient_by_id(conn, patient.id)
            assert updated is not None
            result = ChannelChange(
                subject, channel, link=await notify_web_link(rt, conn, updated, url)
            )
        else:
            if phone is not None or birth_year is not None:
                raise EnrolError("--phone and --birth-year are for the web channel only", WEB_ONLY)
            await store.set_channel(conn, patient.id, "telegram", None, None)
            await store.revoke_links(conn, patient.id, now)
            if patient.chat_id is None:
                code = await issue_code(rt, conn, patient.id, now)
                result = ChannelChange(
                    subject, channel, code=code, deep_link=deep_link(rt.bot_username, code)
                )
        await audit.record(
            conn,
            now,
            actor,
            "channel_changed",
            subject=subject,
            entity="patient",
            old=patient.channel,
            new=channel,
            reason=reason.strip(),
        )
    return result


def qr_terminal(url: str) -> str:
    """The link as a QR code drawn with characters, for the coordinator's terminal."""
    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def qr_png(url: str, scale: int = 6) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_svg(url: str, scale: int = 6) -> str:
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=scale, border=4, xmldecl=False)
    return out.getvalue().decode("utf-8")
