"""Data out in Telegram: /export for staff, /progress for patients, the chart of /patient.

Thin handlers: authorize, parse, call bot.dataout, hand the file to the outbox. Files are built
in a worker thread (charts and exports take CPU time the event loop must not wait on); the
outbox row and the audit entry of an export are one transaction.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Update
from telegram.ext import ContextTypes

from bot import messenger
from bot.dataout import charts, exports
from bot.dataout.dataset import Subject, UnknownSubject, load, snapshot
from bot.escalation import permissions
from bot.i18n import t
from bot.services.runtime import Runtime
from conversations import dataout_view as view
from conversations import diary
from conversations.common import current_patient, runtime, say, tr
from conversations.staff import authorize
from storage import repo

log = logging.getLogger(__name__)

# Telegram accepts documents up to 50 MB from bots; stay clear of it.
MAX_DOCUMENT = 45 * 1024 * 1024
PROGRESS_STATES = ("active", "paused", "completed")


def _chat_id(update: Update) -> int:
    chat = update.effective_chat
    assert chat is not None
    return chat.id


async def _subject(rt: Runtime, subject: str) -> Subject:
    """One subject's diaries from a consistent snapshot. Raises UnknownSubject."""
    async with snapshot(rt.db.path) as conn:
        ds = await load(conn, rt.study, rt.now(), subject=subject, with_history=False)
    return ds.subjects[0]


async def patient_chart(rt: Runtime, subject: str, locale: str) -> bytes:
    """The staff chart of one subject as PNG, labelled in `locale`. Raises UnknownSubject."""
    data = await _subject(rt, subject)
    return await asyncio.to_thread(charts.render_staff, rt.study, data, t(locale))


async def send_patient_chart(rt: Runtime, chat_id: int, subject: str, locale: str) -> bool:
    """Queue the staff chart as a photo (with the /patient text). False: unknown subject."""
    try:
        png = await patient_chart(rt, subject, locale)
    except UnknownSubject:
        return False
    _ = t(locale)
    async with rt.db.transaction() as conn:
        await messenger.enqueue_file(
            conn,
            rt.now(),
            chat_id,
            f"{subject}.png",
            png,
            caption=view.chart_caption(_, subject),
            photo=True,
        )
    rt.wake_sender()
    return True


async def on_export(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`/export csv|odm|fhir [RP-001] [YYYY-MM-DD]`: the study data as a file, audited.

    A whole-study export takes seconds; it runs as a background task so that patients' taps
    are not held up behind it (updates are handled one at a time).
    """
    staff = await authorize(update, context, permissions.VIEW, "command:/export")
    if staff is None:
        return
    rt = runtime(context)
    _ = t(staff.lang)
    chat_id = _chat_id(update)
    try:
        request = exports.parse_request(list(context.args or []))
    except exports.RequestError as exc:
        await say(rt, chat_id, view.export_refused(_, exc.code))
        return
    if request.subject and await repo.patient_by_subject(rt.db.conn, request.subject) is None:
        await say(rt, chat_id, view.no_patient(_, request.subject))
        return
    await say(rt, chat_id, view.export_preparing(_, request.fmt))
    context.application.create_task(
        _export_and_send(rt, staff, chat_id, request), update=update, name="export"
    )


async def _export_and_send(
    rt: Runtime, staff: repo.Staff, chat_id: int, request: exports.Request
) -> None:
    _ = t(staff.lang)
    now = rt.now()
    try:
        export = await exports.run(
            rt.db.path, rt.study, now, request.fmt, subject=request.subject, since=request.since
        )
        name, data = exports.one_document(export, rt.study, now)
    except Exception:
        log.exception("export failed")
        await say(rt, chat_id, view.export_failed(_))
        return
    if len(data) > MAX_DOCUMENT:
        await say(rt, chat_id, view.export_too_large(_))
        return
    caption = view.export_caption(_, request.fmt, export.subjects, export.diaries)
    if export.audit_head:
        caption += "\n" + view.audit_head_line(_, export.audit_head)
    async with rt.db.transaction() as conn:
        await exports.record(
            conn,
            now,
            f"staff:{staff.telegram_id}",
            export,
            subject=request.subject,
            since=request.since,
            destination=f"telegram:{name}",
        )
        await messenger.enqueue_file(conn, now, chat_id, name, data, caption=caption)
    rt.wake_sender()


async def on_progress(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/progress: the patient's own bleeding and pain over the last 30 days, as a picture."""
    rt = runtime(context)
    patient = await current_patient(rt, update)
    if patient is None or patient.status not in PROGRESS_STATES:
        await diary.not_enrolled(update, context)
        return
    _ = tr(update, patient)
    chat_id = _chat_id(update)
    data = await _subject(rt, patient.subject)
    if not any(d.status == "completed" for d in data.diaries):
        await say(rt, chat_id, view.progress_nothing_yet(_))
        return
    today = rt.local_today(patient.timezone)
    png = await asyncio.to_thread(charts.render_patient, rt.study, data, today, _)
    async with rt.db.transaction() as conn:
        await messenger.enqueue_file(
            conn,
            rt.now(),
            chat_id,
            "diary.png",
            png,
            caption=view.progress_caption(_, charts.PATIENT_DAYS),
            photo=True,
        )
    rt.wake_sender()


COMMANDS = {"export": on_export, "progress": on_progress}
