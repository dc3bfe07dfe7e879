"""Diary handlers: thin. Parse the input, call DiaryService, render, enqueue.

The reply is queued in the same transaction as the step it answers (`Reply`), so after a crash
the patient never has a stored answer without the next question, or the reverse.
"""

from __future__ import annotations

from typing import Any

import aiosqlite
from telegram import Update
from telegram.ext import ContextTypes

from bot.messenger import Buttons, enqueue, enqueue_edit
from bot.services.diary import DiaryService, Outcome
from bot.services.diary_screen import Action, perform
from conversations import diary_view as view
from conversations.callbacks import Callback
from conversations.common import current_patient, runtime, say, toast, tr, ut
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
    reply = Reply(update, context, patient, message_id=None)
    await reply.after(await service(context).open(patient, respond=reply))


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
    # "Start" keeps the prompt; the diary starts in its own message. Every other step edits
    # the message whose button was pressed.
    reply = Reply(update, context, patient, message_id=None if cb.verb == "s" else message_id)
    # What the button means is the same Action the web's form buttons carry.
    outcome = await perform(svc, patient, Action(cb.verb, occ_id, item, code), respond=reply)
    await reply.after(outcome)


async def on_typed(
    update: Update, context: ContextTypes.DEFAULT_TYPE, patient: Patient, text: str
) -> bool:
    """Typed text during a diary. False: no diary is waiting for it."""
    reply = Reply(update, context, patient, message_id=None)
    outcome = await service(context).typed(patient, text, respond=reply)
    if outcome is None:
        return False
    await reply.after(outcome)
    return True


class Reply:
    """How the bot answers a diary step: messages queued inside the step's transaction
    (`__call__`, the service's `respond`), then the button's toast once it has committed
    (`after`). Edits the message whose button was pressed, or sends a new one."""

    def __init__(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        patient: Patient,
        *,
        message_id: int | None,
    ) -> None:
        self.update = update
        self.rt = runtime(context)
        self.patient = patient
        self.message_id = message_id
        self.t = tr(update, patient)
        self.chat_id = patient.chat_id or (update.effective_chat.id if update.effective_chat else 0)
        self.is_button = update.callback_query is not None

    async def __call__(self, conn: aiosqlite.Connection, outcome: Outcome) -> None:
        t, study, now, chat_id = self.t, self.rt.study, self.rt.now(), self.chat_id

        async def put(text: str, buttons: Buttons | None = None) -> None:
            if self.message_id is not None:
                await enqueue_edit(conn, now, chat_id, self.message_id, text, buttons=buttons)
            else:
                await enqueue(conn, now, chat_id, text, buttons=buttons)

        urgent: Any = outcome.extra.get("messages") if outcome.status != "submitted" else None
        if urgent and outcome.status in ("question", "updated", "review"):
            # An answer raised an urgent alert before Submit: the safety text now, in a message
            # of its own (it notifies), then the diary goes on below it in a new message.
            query = self.update.callback_query
            old = getattr(query.message, "text", None) if query else None
            if self.message_id is not None and old:
                await enqueue_edit(conn, now, chat_id, self.message_id, old, buttons=None)
            for extra in urgent:
                await enqueue(conn, now, chat_id, str(extra))
            self.message_id = None
        if outcome.status in ("question", "updated"):
            await put(*view.question(t, study, outcome))
        elif outcome.status == "review":
            await put(*view.review(t, study, outcome))
        elif outcome.status == "submitted":
            text, _ = view.review(t, study, outcome)
            await put(text.rsplit("\n", 2)[0])  # the answers, without the buttons
            extra_buttons: Any = outcome.extra.get("buttons")  # e.g. "I made a mistake"
            submitted = view.submitted(t, self.patient, outcome)
            await enqueue(conn, now, chat_id, submitted, buttons=extra_buttons or None)
            messages: Any = outcome.extra.get("messages", [])
            for extra in messages:  # e.g. the safety text
                await enqueue(conn, now, chat_id, str(extra))
        elif outcome.status == "invalid":
            if not self.is_button:
                await enqueue(conn, now, chat_id, view.error_text(t, study, outcome))
        elif not self.is_button:
            await enqueue(conn, now, chat_id, view.status_text(t, self.patient, outcome))
        elif outcome.status in ("closed", "already_done") and self.message_id is not None:
            # Take yesterday's buttons away so they are not tapped again.
            query = self.update.callback_query
            old = getattr(query.message, "text", None) if query else None
            if old:
                await enqueue_edit(conn, now, chat_id, self.message_id, old, buttons=None)

    async def after(self, outcome: Outcome) -> None:
        """After the commit: send what was queued, answer the button (stops its spinner)."""
        self.rt.wake_sender()
        if not self.is_button:
            return
        if outcome.status in ("question", "updated", "review"):
            await toast(self.update)
        elif outcome.status == "submitted":
            await toast(self.update, self.t("Saved"))
        elif outcome.status == "invalid":
            await toast(self.update, view.error_text(self.t, self.rt.study, outcome), alert=True)
        else:
            await toast(self.update, view.status_text(self.t, self.patient, outcome), alert=True)
