"""Which way a patient is reached, and saying something to them that way.

A patient is on one channel at a time: `telegram` (the chat) or `web` (the web diary; they are
reached by SMS at their phone number). Until the patients table has `channel` and `phone`
(migration 0013, the web diary), every patient is on Telegram: `route_for_patient` reads
`channel` only when the row has it.

`notify_patient` is the one call for prompts, reminders, visit reminders and the safety text:
Telegram patients get `telegram_text` (with its buttons) through `bot.messenger.enqueue`; web
patients get the SMS for `purpose` (the study's approved template for Aliyun / Tencent, the
bot's translated text for free-text gateways) through the same durable outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from bot import messenger
from bot.channels.links import public_url
from bot.channels.outbox import enqueue_sms, valid_phone
from bot.domain.study import Study
from bot.i18n import T, t
from bot.messenger import Buttons, Priority

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientRoute:
    channel: str  # telegram | sms
    chat_id: int | None = None
    phone: str | None = None


def _field(patient: Any, name: str) -> Any:
    if isinstance(patient, Mapping):
        return patient.get(name)
    if isinstance(patient, aiosqlite.Row):
        return patient[name] if name in patient.keys() else None
    return getattr(patient, name, None)


def route_for_patient(patient: Any) -> PatientRoute | None:
    """How to reach this patient now (None: not at all: no chat yet, blocked, no phone).

    `patient`: a patients row (aiosqlite.Row or a mapping) or a `repo.Patient`."""
    channel = _field(patient, "channel") or "telegram"
    if channel == "web":
        phone = _field(patient, "phone")
        if isinstance(phone, str) and valid_phone(phone):
            return PatientRoute("sms", phone=phone)
        return None
    chat_id = _field(patient, "chat_id")
    if chat_id is None or _field(patient, "unreachable"):
        return None
    return PatientRoute("telegram", chat_id=int(chat_id))


def sms_text(_: T, study: Study, purpose: str, params: Mapping[str, str]) -> str:
    """The full text of a patient SMS (what free-text gateways send), in the patient's language."""
    if purpose == "prompt":
        return _("Your study diary for today is open. Please fill it in: {link}", **params)
    if purpose == "reminder":
        return _("Reminder: today's study diary is still open: {link}", **params)
    if purpose == "web_link":
        return _(
            "Your personal study diary link: {link} Please keep this message and do not share "
            "the link.",
            **params,
        )
    if purpose == "visit_reminder":
        return _(
            "Reminder from your study team: your study visit ({visit}) is due on {date}.",
            **params,
        )
    if purpose == "safety":
        from bot.escalation.views import safety_text

        return safety_text(_, study)
    raise ValueError(f"no patient SMS for {purpose!r}")


def sms_params(
    study: Study, purpose: str, extra: Mapping[str, str] | None, base_url: str | None = None
) -> dict[str, str]:
    params = dict(extra or {})
    if purpose in ("prompt", "reminder", "web_link"):
        params.setdefault("link", (base_url or public_url()) + "/")
    if purpose == "safety":
        params.setdefault("phone", study.contact_phone)
        params.setdefault("emergency", study.emergency_number)
    return params


async def notify_patient(
    conn: aiosqlite.Connection,
    now: datetime,
    study: Study,
    patient: Any,
    purpose: str,
    *,
    telegram_text: str | None,
    buttons: Buttons | None = None,
    params: Mapping[str, str] | None = None,
    priority: Priority = Priority.PROMPT,
    ref: str | None = None,
    sms_text_override: str | None = None,
    base_url: str | None = None,
) -> bool:
    """Queue a message for the patient on their channel; False when they cannot be reached.

    `telegram_text=None`: nothing for Telegram patients (e.g. the safety text, which the chat
    already shows as the diary's answer). `sms_text_override`: the free-text SMS, when the
    chat's own text (in the patient's language) reads well as an SMS. `base_url`: the web
    diary's address (`rt.public_url`; default DIARYBOT_PUBLIC_URL) for the link in prompts."""
    route = route_for_patient(patient)
    if route is None:
        return False
    if route.channel == "telegram":
        if telegram_text is None:
            return False
        assert route.chat_id is not None
        await messenger.enqueue(
            conn, now, route.chat_id, telegram_text, buttons=buttons, priority=priority, ref=ref
        )
        return True
    assert route.phone is not None
    lang = _field(patient, "lang") or study.languages[0]
    values = sms_params(study, purpose, params, base_url)
    text = sms_text_override or sms_text(t(lang), study, purpose, values)
    await enqueue_sms(
        conn, now, route.phone, text, priority, template=purpose, params=values, lang=lang, ref=ref
    )
    return True
