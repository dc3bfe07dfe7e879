"""/start, enrolment codes, the language question, /help."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.delivery.inbound import not_a_stranger
from bot.domain.study import Study
from bot.i18n import T, t
from bot.services import codes
from bot.services.enrolment import link_chat
from conversations.callbacks import make
from conversations.common import current_patient, current_staff, runtime, say, tr, ut
from storage import repo


def welcome(_: T, rt_study_phone: str, patient: repo.Patient) -> str:
    return "\n".join(
        [
            _(
                "Welcome! You are now connected to the study diary as {subject}.",
                subject=patient.subject,
            ),
            _(
                "Every day at {time} I will send you a short diary. It takes about a minute.",
                time=patient.prompt_time.strftime("%H:%M"),
            ),
            "",
            _("/diary – fill in today's diary"),
            _("/schedule – your next diary and visit"),
            _("/progress – a chart of your own diary"),
            _("/settings – language, reminder time, time zone"),
            _("/help – what this bot is for and how to reach the study team"),
            "",
            _("Study team phone: {phone}", phone=rt_study_phone),
        ]
    )


def language_question() -> tuple[str, list[list[tuple[str, str]]]]:
    text = "请选择语言 / Please choose your language"
    return text, [[("中文", make("l", "set", "zh_Hans")), ("English", make("l", "set", "en"))]]


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    chat = update.effective_chat
    assert chat is not None
    patient = await current_patient(rt, update)
    if patient is not None:
        await say(rt, chat.id, welcome(tr(update, patient), rt.study.contact_phone, patient))
        return
    staff = await current_staff(rt, update)
    if staff is not None and not context.args:
        from conversations.staff import staff_help

        await say(rt, chat.id, staff_help(t(staff.lang)))
        return
    if context.args:
        await redeem(update, context, " ".join(context.args))
        return
    await say(
        rt,
        chat.id,
        ut(
            update,
            "Welcome. This is the symptom diary of a clinical study. "
            "Please type the enrolment code "
            "your study team gave you.",
        ),
    )


async def redeem(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
    rt = runtime(context)
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None and user is not None
    result = await link_chat(rt, chat.id, user.id, text)
    _ = tr(update, result.patient)
    if result.status == "ok":
        assert result.patient is not None
        not_a_stranger()  # a patient now: the welcome is not held back
        if result.patient.lang is None:
            await say(rt, chat.id, *language_question())
        else:
            await say(rt, chat.id, welcome(_, rt.study.contact_phone, result.patient))
        await rt.poke_scheduler()  # a diary window may be open right now
        return
    if result.status == "already":
        assert result.patient is not None
        await say(rt, chat.id, welcome(_, rt.study.contact_phone, result.patient))
        return
    messages = {
        "wrong": _("This code is not right. Please check it and try again."),
        "expired": _("This code has expired. Please ask your study team for a new one."),
        "used": _("This code has already been used. Please ask your study team for a new one."),
    }
    if result.status == "locked":
        text = _("Too many wrong codes. Please wait 15 minutes and try again.")
    else:
        text = messages[result.status]
    await say(rt, chat.id, text)


async def on_stranger_text(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
    rt = runtime(context)
    chat = update.effective_chat
    assert chat is not None
    if codes.looks_like_code(text):
        await redeem(update, context, text)
        return
    await say(
        rt,
        chat.id,
        ut(
            update,
            "This bot is the symptom diary of a clinical study. If you take part, please send the "
            "enrolment code your study team gave you.",
        ),
    )


async def on_language_chosen(
    update: Update, context: ContextTypes.DEFAULT_TYPE, locale: str, patient: repo.Patient
) -> None:
    from bot.services.patient_settings import set_language

    rt = runtime(context)
    updated = await set_language(rt, patient, locale)
    await say(rt, updated.chat_id or 0, welcome(t(locale), rt.study.contact_phone, updated))


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    chat = update.effective_chat
    assert chat is not None
    patient = await current_patient(rt, update)
    staff = await current_staff(rt, update)
    if staff is not None and patient is None:
        from conversations.staff import staff_help

        await say(rt, chat.id, staff_help(t(staff.lang)))
        return
    await say(rt, chat.id, help_text(tr(update, patient), rt.study))


def help_text(_: T, study: Study) -> str:
    """/help for a patient (or a stranger): what the bot is for, and who to call."""
    lines = [
        _(
            "This is the symptom diary of study {study}: {title}.",
            study=study.id,
            title=_(study.title),
        ),
        _("Your answers go to your study team. The bot does not give medical advice."),
        "",
        _("/diary – fill in today's diary"),
        _("/schedule – your next diary and visit"),
        _("/progress – a chart of your own diary"),
        _("/settings – language, reminder time, time zone"),
        "",
        _(
            "If you feel very unwell, call {emergency} now (or your local emergency number if "
            "you are outside mainland China), or go to the nearest emergency department.",
            emergency=study.emergency_number,
        ),
        _("Study team phone: {phone}", phone=study.contact_phone),
    ]
    return "\n".join(lines)
