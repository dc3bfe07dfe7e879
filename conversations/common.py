"""Shared plumbing for handlers: who is calling, and how to answer them (through the outbox)."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import messenger
from bot.delivery.inbound import audit_or_count
from bot.i18n import T, locale_for, t
from bot.messenger import Buttons, Priority
from bot.services.runtime import Runtime
from storage import repo

log = logging.getLogger(__name__)


def runtime(context: ContextTypes.DEFAULT_TYPE) -> Runtime:
    return context.application.bot_data["rt"]


def user_locale(update: Update, patient: repo.Patient | None = None) -> str:
    """The patient's explicit choice wins; otherwise Telegram's language."""
    if patient is not None and patient.lang:
        return patient.lang
    user = update.effective_user
    return locale_for(user.language_code if user else None)


def tr(update: Update, patient: repo.Patient | None = None) -> T:
    return t(user_locale(update, patient))


def ut(update: Update, msgid: str, patient: repo.Patient | None = None, **kwargs: object) -> str:
    """Translate `msgid` for whoever sent `update` (extracted by pybabel as keyword `ut:2`)."""
    return tr(update, patient)(msgid, **kwargs)


async def current_patient(rt: Runtime, update: Update) -> repo.Patient | None:
    user = update.effective_user
    if user is None:
        return None
    return await repo.patient_by_user(rt.db.conn, user.id)


async def current_staff(rt: Runtime, update: Update) -> repo.Staff | None:
    user = update.effective_user
    if user is None:
        return None
    return await repo.staff_by_id(rt.db.conn, user.id)


async def say(
    rt: Runtime,
    chat_id: int,
    text: str,
    buttons: Buttons | None = None,
    *,
    priority: Priority = Priority.REPLY,
    ref: str | None = None,
) -> None:
    async with rt.db.transaction() as conn:
        await messenger.enqueue(
            conn, rt.now(), chat_id, text, buttons=buttons, priority=priority, ref=ref
        )
    rt.wake_sender()


async def edit(
    rt: Runtime, chat_id: int, message_id: int, text: str, buttons: Buttons | None = None
) -> None:
    async with rt.db.transaction() as conn:
        await messenger.enqueue_edit(conn, rt.now(), chat_id, message_id, text, buttons=buttons)
    rt.wake_sender()


async def toast(update: Update, text: str | None = None, *, alert: bool = False) -> None:
    """Answer a button press (stops the spinner). Not a message, so not through the outbox."""
    query = update.callback_query
    if query is None:
        return
    try:
        await query.answer(text, show_alert=alert)
    except TelegramError as exc:  # a late answer is harmless; the outcome is already stored
        log.info("answerCallbackQuery failed: %s", type(exc).__name__)


async def refuse_unauthorized(rt: Runtime, update: Update, what: str) -> None:
    """A patient or stranger tried a staff command or button: "not available", audited."""
    user = update.effective_user
    chat = update.effective_chat
    async with rt.db.transaction() as conn:
        # a stranger's attempts are counted per hour, not audited one by one (issue 11)
        await audit_or_count(
            conn, rt.now(), f"user:{user.id if user else '?'}", "unauthorized", entity=what
        )
    text = ut(update, "This is not available.")
    if update.callback_query:
        await toast(update, text, alert=True)
    elif chat is not None:
        await say(rt, chat.id, text)
