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
from conversations.callbacks import Callback
from conversations.common import edit, runtime, say, toast
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
    text, buttons = staff_views.alert_pages(t(staff.lang), rt.study, alerts, rt.now())[0]
    await say(rt, _chat_id(update), text, buttons or None)


async def on_patients(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    staff = await authorize(update, context, permissions.VIEW, "command:/patients")
    if staff is None:
        return
    rt = runtime(context)
    rows = await overview.summaries(rt)
    text, buttons = staff_views.patient_pages(t(staff.lang), rt.study, rows)[0]
    await say(rt, _chat_id(update), text, buttons or None)


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
    text, buttons = staff_views.detail_pages(_, rt.study, found, rt.now())[0]
    await say(rt, _chat_id(update), text, buttons or None)


async def on_page_button(update: Update, context: ContextTypes.DEFAULT_TYPE, cb: Callback) -> None:
    """`pg:al|pt:<page>` or `pg:pd:<page>:<subject>`: show another page of a staff list.

    The list is read again (it shows the present, like the command); the page replaces the
    message in place. Data that is not a button of that very message (forged), or a page the
    list no longer has (stale), changes nothing and says so.
    """
    staff = await authorize(update, context, permissions.VIEW, f"button:{cb.area}:{cb.verb}")
    if staff is None:
        return
    rt = runtime(context)
    _ = t(staff.lang)
    query = update.callback_query
    message = query.message if query is not None else None
    page = cb.int_arg(0)
    markup = getattr(message, "reply_markup", None)
    offered = {b.callback_data for row in markup.inline_keyboard for b in row} if markup else set()
    if query is None or message is None or query.data not in offered or page is None:
        await toast(update, _("This is not available."), alert=True)
        return
    pages: list[staff_views.Page] | None = None
    if cb.verb == "al" and len(cb.args) == 1:
        alerts = await service.unfinished_alerts(rt.db.conn)
        pages = staff_views.alert_pages(_, rt.study, alerts, rt.now())
    elif cb.verb == "pt" and len(cb.args) == 1:
        pages = staff_views.patient_pages(_, rt.study, await overview.summaries(rt))
    elif cb.verb == "pd" and len(cb.args) == 2:
        found = await overview.detail(rt, cb.args[1])
        if found is not None:
            pages = staff_views.detail_pages(_, rt.study, found, rt.now())
    if pages is None:
        await toast(update, _("This is not available."), alert=True)
        return
    if not 0 <= page < len(pages):
        await toast(update, _("This list has changed. Please send the command again."), alert=True)
        return
    text, buttons = pages[page]
    await edit(rt, message.chat.id, message.message_id, text, buttons or None)
    await toast(update)


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
    web: tuple[str, str] | None = None  # /enroll RP-004 2026-12-10 zh web +8613812345678 1956
    if len(args) == 6 and args[3].lower() == "web":
        web = (args[4], args[5])
        args = args[:3]
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
            channel="web" if web else "telegram",
            phone=web[0] if web else None,
            birth_year=int(web[1]) if web and web[1].isdigit() else (0 if web else None),
        )
    except EnrolError as exc:  # e.g. enrolled a moment ago by someone else
        await say(rt, chat_id, _("Not enrolled: {reason}", reason=exc.text(_)))
        return
    if result.channel == "web" and result.link:
        from bot.web.feature import send_link

        await send_link(rt, chat_id, _, subject, injection, result.link)
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
