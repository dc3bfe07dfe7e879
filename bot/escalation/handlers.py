"""Telegram handlers of the escalation feature (thin): alert buttons, staff notes, and the
patient's "I made a mistake". Each parses, authorizes, calls the service and answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from telegram import Update
from telegram.ext import ContextTypes

from bot.domain.textsafety import has_xml_forbidden
from bot.escalation import corrections, permissions, service
from bot.escalation.views import AREA, CONTACTED, TRIAGE_CHOICES, when
from bot.i18n import T, t
from conversations.callbacks import Callback, make
from conversations.common import (
    current_patient,
    current_staff,
    edit,
    refuse_unauthorized,
    runtime,
    say,
    toast,
    tr,
)
from conversations.staff import authorize
from storage import alerts as store
from storage import repo

NOTE_PENDING_FOR = timedelta(hours=1)

StaffText = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[bool]]


def _result_text(
    _: T, tz: str, now: datetime, result: service.Result, names: dict[int, str]
) -> str:
    """The toast for a refused or repeated alert action: say what the state is."""
    alert = result.alert
    if result.status == "not_yet":
        return _("Please acknowledge the alert first.")
    if result.status == "already" and alert is not None and alert.acked_at is not None:
        name = names.get(alert.acked_by or 0, "?")
        if alert.status == "closed":
            return _("This alert is already closed.")
        if alert.triage is not None:
            return _("This alert was already triaged.")
        return _(
            "Already acknowledged by {name} at {time}.",
            name=name,
            time=when(_, alert.acked_at, now, tz),
        )
    return _("This is not available.")


async def on_alert_button(update: Update, context: ContextTypes.DEFAULT_TYPE, cb: Callback) -> None:
    """`al:<verb>:<alert id>[:<choice>]` — pressed in a private chat or the study-team group."""
    rt = runtime(context)
    what = f"button:{cb.area}:{cb.verb}"
    chat = update.effective_chat
    if chat is not None and chat.type != "private":
        group = await repo.meta_get(rt.db.conn, "staff_group")
        if group is None or int(group) != chat.id:
            await refuse_unauthorized(rt, update, what)
            return
    action = permissions.VIEW if cb.verb == "show" else permissions.CLINICAL
    staff = await authorize(update, context, action, what)
    if staff is None:
        return
    _ = t(staff.lang)
    alert_id = cb.int_arg(0)
    if alert_id is None:
        await toast(update, _("This is not available."), alert=True)
        return
    if cb.verb == "ack":
        result = await service.acknowledge(rt, staff, alert_id)
        done = _("Acknowledged.")
    elif cb.verb == "tri" and len(cb.args) == 2 and cb.args[1] in (*TRIAGE_CHOICES, CONTACTED):
        result = await service.triage(rt, staff, alert_id, cb.args[1])
        done = _("Saved.")
    elif cb.verb == "sae":
        result = await service.sae_reported(rt, staff, alert_id)
        done = _("Marked as reported to the sponsor.")
    elif cb.verb == "note":
        await _ask_note(update, context, staff, alert_id)
        return
    elif cb.verb == "show":
        await _show(update, context, staff, alert_id)
        return
    else:
        await toast(update, _("This is not available."), alert=True)
        return
    if result.status != "ok":
        ids = result.alert.staff_ids() if result.alert else set()
        names = await store.staff_names(rt.db.conn, ids)
        text = _result_text(_, rt.study.timezone, rt.now(), result, names)
        await toast(update, text, alert=True)
        return
    await toast(update, done)
    if cb.verb == "tri" and result.alert is not None and result.alert.triage is not None:
        # Classified ("patient contacted" is not a classification): offer the optional note.
        await _ask_note(update, context, staff, alert_id, after_triage=True)


async def _ask_note(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    staff: repo.Staff,
    alert_id: int,
    *,
    after_triage: bool = False,
) -> None:
    """Wait for a note from this staff member, asked in their private chat (even when the
    button was in the group, so the note is not typed in front of everyone)."""
    rt = runtime(context)
    _ = t(staff.lang)
    async with rt.db.transaction() as conn:
        alert = await store.get(conn, alert_id)
        if alert is None or alert.status == "open":
            if not after_triage:
                text = _("Please acknowledge the alert first.") if alert else None
                await toast(update, text or _("This is not available."), alert=True)
            return
        await store.set_pending(conn, f"staff:{staff.telegram_id}", "note", alert.id, rt.now())
    if not after_triage:
        await toast(update)
    await say(
        rt,
        staff.telegram_id,
        _(
            "Optional: type a note for alert #{id} ({subject}) now, or reply to the alert with it.",
            id=alert.id,
            subject=alert.subject,
        ),
    )


async def _show(
    update: Update, context: ContextTypes.DEFAULT_TYPE, staff: repo.Staff, alert_id: int
) -> None:
    rt = runtime(context)
    async with rt.db.transaction() as conn:
        alert = await store.get(conn, alert_id)
        if alert is not None:
            await service.show(rt, conn, alert, staff, rt.now())
    if alert is None:
        await toast(update, t(staff.lang)("This is not available."), alert=True)
        return
    await toast(update)
    rt.wake_sender()


def staff_text(previous: StaffText | None) -> StaffText:
    """The `Hooks.staff_text` handler: a note for an alert, typed as a reply to the
    alert or after the bot asked for one. Anything else goes to `previous` (another feature)."""

    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
        if await _note_text(update, context):
            return True
        return await previous(update, context) if previous is not None else False

    return handle


async def _note_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    rt = runtime(context)
    msg, chat = update.effective_message, update.effective_chat
    staff = await current_staff(rt, update)
    if msg is None or chat is None or staff is None:
        return False
    alert_id = None
    if msg.reply_to_message is not None:
        alert_id = await store.alert_of_message(
            rt.db.conn, chat.id, msg.reply_to_message.message_id
        )
    if alert_id is None:
        pending = await store.get_pending(rt.db.conn, f"staff:{staff.telegram_id}")
        if pending is None or pending.kind != "note":
            return False
        if rt.now() - pending.created_at > NOTE_PENDING_FOR:
            async with rt.db.transaction() as conn:
                await store.clear_pending(conn, f"staff:{staff.telegram_id}")
            return False
        alert_id = pending.target
    if await authorize(update, context, permissions.CLINICAL, "note") is None:
        return True
    _ = t(staff.lang)
    if has_xml_forbidden(msg.text or ""):
        await say(
            rt,
            chat.id,
            _(
                "Your message contains invisible control characters that cannot be saved."
                " Please type it again as plain text."
            ),
        )
        return True
    text = (msg.text or "").strip()
    if not text:
        await say(rt, chat.id, _("Please type a few words."))
        return True
    if len(text) > rt.study.max_free_text:
        await say(
            rt,
            chat.id,
            _(
                "That is too long: please keep it under {max} characters.",
                max=rt.study.max_free_text,
            ),
        )
        return True
    result = await service.add_note(rt, staff, alert_id, text)
    if result.status == "ok":
        await say(rt, chat.id, _("Note saved on alert #{id}.", id=alert_id))
    elif result.status == "not_yet":
        await say(rt, chat.id, _("Please acknowledge the alert first."))
    else:
        await say(rt, chat.id, _("This is not available."))
    return True


# --------------------------------------------------------------------------- patient side


async def on_change_button(
    update: Update, context: ContextTypes.DEFAULT_TYPE, cb: Callback
) -> None:
    """`dc:new:<occurrence id>` ("I made a mistake") and `dc:cancel`."""
    rt = runtime(context)
    patient = await current_patient(rt, update)
    if patient is None or patient.status == "invited" or patient.chat_id is None:
        await refuse_unauthorized(rt, update, f"button:{cb.area}:{cb.verb}")
        return
    _ = tr(update, patient)
    query = update.callback_query
    message_id = query.message.message_id if query and query.message else None
    if cb.verb == "new" and cb.int_arg(0) is not None:
        if not await corrections.start_request(rt, patient, cb.int_arg(0) or 0):
            await toast(update, _("This is not available."), alert=True)
            return
        await toast(update)
        await say(
            rt,
            patient.chat_id,
            _(
                "What is wrong in this diary? Please type which answer it is and what it "
                "should be, in one message. Your study team will check it; your diary is not "
                "changed until they do."
            ),
            [[(_("Cancel"), make(corrections.AREA, "cancel"))]],
        )
    elif cb.verb == "cancel":
        await corrections.cancel_request(rt, patient)
        await toast(update)
        text = _("Cancelled. Nothing was sent to your study team.")
        if message_id is not None:
            await edit(rt, patient.chat_id, message_id, text, None)
        else:
            await say(rt, patient.chat_id, text)
    else:
        await toast(update, _("This is not available."), alert=True)


async def on_patient_text(
    update: Update, context: ContextTypes.DEFAULT_TYPE, patient: repo.Patient, text: str
) -> bool:
    """A `Hooks.patient_text` hook: the description of a mistake, if one is awaited."""
    rt = runtime(context)
    result = await corrections.describe(rt, patient, text)
    if result.status == "none":
        return False
    _ = tr(update, patient)
    chat_id = patient.chat_id or 0
    if result.status == "empty":
        await say(rt, chat_id, _("Please type a few words."))
    elif result.status == "control_chars":
        await say(
            rt,
            chat_id,
            _(
                "Your message contains invisible control characters that cannot be saved."
                " Please type it again as plain text."
            ),
        )
    elif result.status == "too_long":
        await say(
            rt,
            chat_id,
            _(
                "That is too long: please keep it under {max} characters.",
                max=rt.study.max_free_text,
            ),
        )
    else:
        await say(
            rt,
            chat_id,
            _(
                "Thank you. Your study team has been told and will check your diary. Your "
                "answers stay as they are until they do."
            ),
        )
    return True


__all__ = ["AREA", "on_alert_button", "on_change_button", "on_patient_text", "staff_text"]
