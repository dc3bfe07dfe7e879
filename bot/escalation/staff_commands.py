"""Staff commands in Telegram: /alerts, /patients, /patient RP-001, /enroll RP-004 2026-12-10 zh.

Thin handlers: authorize (every call, so a removed staff member is refused at once), read,
render in the staff member's language, answer through the outbox.
"""

from __future__ import annotations

import logging
from datetime import date

from telegram import Update
from telegram.ext import ContextTypes

from bot import messenger
from bot.escalation import overview, permissions, service, staff_views
from bot.i18n import parse_lang, t
from bot.services.enrolment import SUBJECT_RE, EnrolError, enroll
from conversations.common import runtime, say
from conversations.dataout import send_patient_chart
from conversations.staff import authorize
from storage import repo

log = logging.getLogger(__name__)


def _chat_id(update: Update) -> int:
    chat = update.effective_chat
    assert chat is not None
    return chat.id


async def on_alerts(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    staff = await authorize(update, context, permissions.VIEW, "command:/alerts")
    if staff is None:
        return
    rt = runtime(context)
    alerts = await service.unfinished_alerts(rt.db.conn)
    text, buttons = staff_views.alerts_list(t(staff.lang), rt.study, alerts, rt.now())
    await say(rt, _chat_id(update), text, buttons or None)


async def on_patients(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    staff = await authorize(update, context, permissions.VIEW, "command:/patients")
    if staff is None:
        return
    rt = runtime(context)
    rows = await overview.summaries(rt)
    await say(rt, _chat_id(update), staff_views.patients_list(t(staff.lang), rt.study, rows))


async def on_patient(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    staff = await authorize(update, context, permissions.VIEW, "command:/patient")
    if staff is None:
        return
    rt = runtime(context)
    _ = t(staff.lang)
    args = context.args or []
    if len(args) != 1:
        await say(rt, _chat_id(update), _("Usage: /patient RP-001"))
        return
    found = await overview.detail(rt, args[0])
    if found is None:
        await say(rt, _chat_id(update), _("No patient {subject}.", subject=args[0][:24]))
        return
    # The chart first (bot/dataout: bleeding, urgency, pain, bowel movements), so the text
    # with the numbers stays the latest message. A chart that cannot be drawn must not cost
    # the staff member the table.
    try:
        await send_patient_chart(rt, _chat_id(update), found.summary.patient.subject, staff.lang)
    except Exception:
        log.exception("the /patient chart could not be made")
    await say(rt, _chat_id(update), staff_views.patient_detail(_, rt.study, found, rt.now()))


async def on_enroll(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/enroll SUBJECT YYYY-MM-DD [zh|en]`: the patient's one-time code and link.

    The study's time zone and prompt time are used; a patient changes them in /settings.
    Every refusal says what to fix and writes nothing.
    """
    staff = await authorize(update, context, permissions.ENROL, "command:/enroll")
    if staff is None:
        return
    rt = runtime(context)
    _ = t(staff.lang)
    chat_id = _chat_id(update)
    args = context.args or []
    if len(args) not in (2, 3):
        await say(rt, chat_id, _("Usage: /enroll RP-004 2026-12-10 zh"))
        return
    subject = args[0]
    if not SUBJECT_RE.match(subject):
        await say(
            rt, chat_id, _("Subject IDs use letters, digits, \u2018-\u2019 and \u2018_\u2019 only.")
        )
        return
    try:
        injection = date.fromisoformat(args[1])
    except ValueError:
        await say(rt, chat_id, _("Please give the injection date as YYYY-MM-DD, like 2026-12-10."))
        return
    lang = parse_lang(args[2]) if len(args) == 3 else None
    if len(args) == 3 and lang is None:
        await say(rt, chat_id, _("The language must be zh or en."))
        return
    if await repo.patient_by_subject(rt.db.conn, subject) is not None:
        await say(rt, chat_id, _("{subject} is already enrolled.", subject=subject))
        return
    try:
        result = await enroll(
            rt,
            subject,
            injection,
            lang,
            rt.study.timezone,
            rt.study.default_prompt_time,
            actor=f"staff:{staff.telegram_id}",
        )
    except EnrolError as exc:  # e.g. enrolled a moment ago by someone else
        await say(rt, chat_id, _("Not enrolled: {reason}", reason=str(exc)))
        return
    lines = [
        _("{subject} enrolled; Day 0 is {date}.", subject=subject, date=_.date(injection)),
        _(
            "One-time code: {code} (valid {days} days)",
            code=result.code,
            days=rt.study.code_valid_hours // 24,
        ),
    ]
    if result.link:
        lines.append(_("Link: {link}", link=result.link))
    # The code must not stay on the server: the outbox forgets the text once it is sent.
    async with rt.db.transaction() as conn:
        await messenger.enqueue(conn, rt.now(), chat_id, "\n".join(lines), secret=True)
    rt.wake_sender()


COMMANDS = {
    "alerts": on_alerts,
    "patients": on_patients,
    "patient": on_patient,
    "enroll": on_enroll,
}
