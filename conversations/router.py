"""All handlers, registered in one place, in the order they must see updates."""

from __future__ import annotations

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.registry import app_hooks, hooks_of
from bot.services import patient_settings as ps
from conversations import diary, settings, start
from conversations.callbacks import parse
from conversations.common import current_patient, current_staff, runtime, say, toast, ut

MAX_TEXT = 4096


async def guard_chat(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Before anything else: only private chats, no edited messages."""
    rt = runtime(context)
    chat = update.effective_chat
    if chat is None:
        raise ApplicationHandlerStop
    if update.edited_message is not None:
        patient = await current_patient(rt, update)  # their chosen language, not Telegram's
        await say(
            rt,
            chat.id,
            ut(
                update,
                "I don't read edited messages. Please send your answer as a new message.",
                patient,
            ),
        )
        raise ApplicationHandlerStop
    if chat.type != "private":
        query = update.callback_query
        if query is not None:
            cb = parse(query.data)
            if cb is not None and cb.area in hooks_of(context).group_buttons:
                return  # e.g. alert buttons in the study-team group (the feature authorizes)
            patient = await current_patient(rt, update)
            text = ut(update, "This bot works only in a private chat.", patient)
            await toast(update, text, alert=True)
        elif update.effective_message is not None and _addressed_to_bot(update, context):
            patient = await current_patient(rt, update)
            await say(
                rt,
                chat.id,
                ut(
                    update,
                    "This bot works only in a private chat. Please write to me directly.",
                    patient,
                ),
            )
        raise ApplicationHandlerStop


def _addressed_to_bot(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    msg = update.effective_message
    text = (msg.text or "") if msg else ""
    return text.startswith("/") or f"@{context.bot.username}" in text


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    query = update.callback_query
    assert query is not None
    cb = parse(query.data)
    patient = await current_patient(rt, update)
    if cb is None:
        await toast(update, ut(update, "This is not available.", patient), alert=True)
        return
    if cb.area in ("d", "s", "l"):
        if patient is None or patient.status in ("invited",):
            await diary.not_enrolled(update, context)
            return
        if cb.area == "d":
            await diary.on_diary_button(update, context, cb, patient)
        elif cb.area == "s":
            await settings.on_settings_button(update, context, cb, patient)
        elif cb.args and cb.args[0] in ("zh_Hans", "en"):
            await toast(update)
            await start.on_language_chosen(update, context, cb.args[0], patient)
        else:
            await toast(update, ut(update, "This is not available.", patient), alert=True)
        return
    handler = hooks_of(context).staff_buttons.get(cb.area)
    if handler is not None:
        await handler(update, context, cb)
        return
    await toast(update, ut(update, "This is not available.", patient), alert=True)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    msg, chat = update.effective_message, update.effective_chat
    assert msg is not None and chat is not None
    text = msg.text or ""
    patient = await current_patient(rt, update)
    if patient is None:
        staff = await current_staff(rt, update)
        staff_text = hooks_of(context).staff_text
        if staff is not None and staff_text is not None and await staff_text(update, context):
            return
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT]
        await start.on_stranger_text(update, context, text)
        return
    for hook in hooks_of(context).patient_text:
        if await hook(update, context, patient, text):  # e.g. describing a diary mistake
            return
    kind = await ps.pending(rt, chat.id)
    if kind is not None:
        await settings.on_pending_text(update, context, patient, kind, text)
        return
    if await diary.on_typed(update, context, patient, text):
        return
    await say(
        rt,
        chat.id,
        ut(update, "To fill in your diary, send /diary. For help, send /help.", patient),
    )


async def on_other_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Photos, stickers, voice…: not read; say so kindly."""
    rt = runtime(context)
    chat = update.effective_chat
    if chat is None:
        return
    patient = await current_patient(rt, update)
    await say(
        rt,
        chat.id,
        ut(
            update,
            "I can only read text and button taps. Please answer with the buttons or type text.",
            patient,
        ),
    )


async def on_settings_cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    patient = await current_patient(rt, update)
    if patient is None or patient.status == "invited":
        await diary.not_enrolled(update, context)
        return
    await settings.on_settings(update, context, patient)


async def on_unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    chat = update.effective_chat
    if chat is None:
        return
    patient = await current_patient(rt, update)
    await say(
        rt,
        chat.id,
        ut(update, "I don't know that command. Send /help to see what I can do.", patient),
    )


def register(app: Application) -> None:
    app.add_handler(MessageHandler(filters.ALL, guard_chat), group=-1)
    app.add_handler(CallbackQueryHandler(guard_chat), group=-1)
    app.add_handler(CommandHandler("start", start.on_start))
    app.add_handler(CommandHandler("diary", diary.on_diary_command))
    app.add_handler(CommandHandler("settings", on_settings_cmd))
    app.add_handler(CommandHandler("help", start.on_help))
    for name, callback in app_hooks(app).commands.items():
        app.add_handler(CommandHandler(name, callback))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(
        MessageHandler(filters.TEXT & ~filters.COMMAND & filters.UpdateType.MESSAGE, on_text)
    )
    app.add_handler(
        MessageHandler(filters.COMMAND & filters.UpdateType.MESSAGE, on_unknown_command)
    )
    app.add_handler(MessageHandler(~filters.TEXT & filters.UpdateType.MESSAGE, on_other_message))
