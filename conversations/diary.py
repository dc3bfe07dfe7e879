"""Diary handlers: thin. Parse the input, call DiaryService, render, enqueue."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from bot.services.diary import DiaryService, Outcome
from conversations import diary_view as view
from conversations.callbacks import Callback
from conversations.common import current_patient, edit, runtime, say, toast, tr, ut
from storage.repo import Patient


def service(context: ContextTypes.DEFAULT_TYPE) -> DiaryService:
    return context.application.bot_data["diary"]


async def on_diary_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    patient = await current_patient(rt, update)
    if patient is None or patient.status == "invited":
        await not_enrolled(update, context)
        return
    if patient.status in ("withdrawn", "completed"):
        await say(
            rt,
            patient.chat_id or 0,
            ut(update, "There are no more diaries planned for you.", patient),
        )
        return
    outcome = await service(context).open(patient)
    await show(update, context, patient, outcome, message_id=None)


async def not_enrolled(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    chat = update.effective_chat
    if chat is None:
        return
    text = ut(
        update,
        "This bot is the symptom diary of a clinical study. If you take part, please send the "
        "enrolment code your study team gave you.",
    )
    if update.callback_query:
        await toast(update, text, alert=True)
    else:
        await say(rt, chat.id, text)


async def on_diary_button(
    update: Update, context: ContextTypes.DEFAULT_TYPE, cb: Callback, patient: Patient
) -> None:
    svc = service(context)
    occ_id = cb.int_arg(0)
    item = cb.args[1] if len(cb.args) > 1 else ""
    code = cb.args[2] if len(cb.args) > 2 else ""
    if occ_id is None:
        await toast(update, ut(update, "This is not available.", patient), alert=True)
        return
    query = update.callback_query
    assert query is not None
    message_id = query.message.message_id if query.message else None
    if cb.verb == "s":
        outcome = await svc.open(patient, occ_id)
        message_id = None  # keep the prompt; the diary starts in its own message
    elif cb.verb == "a" and item and code:
        outcome = await svc.answer(patient, occ_id, item, code)
    elif cb.verb == "t" and item and code:
        outcome = await svc.toggle(patient, occ_id, item, code)
    elif cb.verb == "n" and item:
        outcome = await svc.multi_done(patient, occ_id, item)
    elif cb.verb == "e" and item:
        outcome = await svc.change(patient, occ_id, item)
    elif cb.verb == "x":
        outcome = await svc.submit(patient, occ_id)
    else:
        outcome = Outcome("not_yours")
    await show(update, context, patient, outcome, message_id=message_id)


async def on_typed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, patient: Patient, text: str
) -> bool:
    """Typed text during a diary. False: no diary is waiting for it."""
    outcome = await service(context).typed(patient, text)
    if outcome is None:
        return False
    await show(update, context, patient, outcome, message_id=None)
    return True


async def show(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    patient: Patient,
    outcome: Outcome,
    *,
    message_id: int | None,
) -> None:
    """Render an outcome: edit the pressed message in place, or send a new one."""
    rt = runtime(context)
    t = tr(update, patient)
    chat_id = patient.chat_id or (update.effective_chat.id if update.effective_chat else 0)
    study = rt.study
    is_button = update.callback_query is not None

    async def put(text: str, buttons: list | None = None) -> None:
        if message_id is not None:
            await edit(rt, chat_id, message_id, text, buttons)
        else:
            await say(rt, chat_id, text, buttons)

    if outcome.status in ("question", "updated"):
        await toast(update)
        await put(*view.question(t, study, outcome))
    elif outcome.status == "review":
        await toast(update)
        await put(*view.review(t, study, outcome))
    elif outcome.status == "submitted":
        await toast(update, t("Saved"))
        text, _ = view.review(t, study, outcome)
        await put(text.rsplit("\n", 2)[0])  # the answers, without the buttons
        extra_buttons: Any = outcome.extra.get("buttons")  # e.g. "I made a mistake"
        await say(rt, chat_id, view.submitted(t, patient, outcome), extra_buttons or None)
        messages: Any = outcome.extra.get("messages", [])
        for extra in messages:  # e.g. the safety text
            await say(rt, chat_id, str(extra))
    elif outcome.status == "invalid":
        text = view.error_text(t, study, outcome)
        if is_button:
            await toast(update, text, alert=True)
        else:
            await say(rt, chat_id, text)
    else:
        text = view.status_text(t, patient, outcome)
        if is_button:
            await toast(update, text, alert=True)
            if outcome.status in ("closed", "already_done") and message_id is not None:
                # Take yesterday's buttons away so they are not tapped again.
                query = update.callback_query
                old = getattr(query.message, "text", None) if query else None
                if old:
                    await edit(rt, chat_id, message_id, old, None)
        else:
            await say(rt, chat_id, text)
