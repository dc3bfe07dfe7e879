"""/settings: language, reminder time, time zone (buttons, or typed HH:MM / IANA name)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.domain.study import parse_hhmm
from bot.i18n import T, t
from bot.services import patient_settings as ps
from bot.services.enrolment import EnrolError, check_timezone
from bot.services.runtime import Runtime
from conversations.callbacks import Callback, make
from conversations.common import edit, runtime, say, toast, tr
from storage.repo import Patient


def menu(_: T, patient: Patient) -> tuple[str, list[list[tuple[str, str]]]]:
    lang = "中文" if patient.lang == "zh_Hans" else "English"
    text = "\n".join(
        [
            _("Your settings:"),
            _("Language: {lang}", lang=lang),
            _("Daily reminder time: {time}", time=patient.prompt_time.strftime("%H:%M")),
            _("Time zone: {tz}", tz=patient.timezone),
        ]
    )
    buttons = [
        [(_("Language"), make("s", "lang"))],
        [(_("Reminder time"), make("s", "time"))],
        [(_("Time zone"), make("s", "tz"))],
    ]
    return text, buttons


async def on_settings(update: Update, context: ContextTypes.DEFAULT_TYPE, patient: Patient) -> None:
    rt = runtime(context)
    await ps.set_pending(rt, patient.chat_id or 0, None)
    await say(rt, patient.chat_id or 0, *menu(tr(update, patient), patient))


async def on_settings_button(
    update: Update, context: ContextTypes.DEFAULT_TYPE, cb: Callback, patient: Patient
) -> None:
    rt = runtime(context)
    _ = tr(update, patient)
    chat_id = patient.chat_id or 0
    query = update.callback_query
    message_id = query.message.message_id if query and query.message else None
    await toast(update)
    if cb.verb == "lang":
        text = _("Choose your language:")
        buttons = [[("中文", make("s", "l", "zh_Hans")), ("English", make("s", "l", "en"))]]
    elif cb.verb == "time":
        text = _("When should I send your daily diary? Tap a time or type one, like 20:30.")
        times = [(x, make("s", "p", x.replace(":", ""))) for x in ps.PROMPT_TIMES]
        buttons = [times[i : i + 4] for i in range(0, len(times), 4)]
        await ps.set_pending(rt, chat_id, "prompt_time")
    elif cb.verb == "tz":
        text = _("Which time zone are you in? Tap one, or type its name, like Europe/Paris.")
        buttons = [[(z, make("s", "z", i))] for i, z in enumerate(ps.COMMON_TIMEZONES)]
        await ps.set_pending(rt, chat_id, "timezone")
    elif cb.verb == "l" and cb.args and cb.args[0] in ("zh_Hans", "en"):
        updated = await ps.set_language(rt, patient, cb.args[0])
        await _done(rt, chat_id, message_id, updated)
        return
    elif cb.verb == "p" and cb.args:
        try:
            at = parse_hhmm(cb.args[0][:2] + ":" + cb.args[0][2:])
        except ValueError:
            await toast(update, _("This is not available."), alert=True)
            return
        updated = await ps.set_prompt_time(rt, patient, at)
        await ps.set_pending(rt, chat_id, None)
        await _done(rt, chat_id, message_id, updated)
        return
    elif cb.verb == "z" and cb.int_arg(0) is not None:
        idx = cb.int_arg(0) or 0
        if not 0 <= idx < len(ps.COMMON_TIMEZONES):
            await toast(update, _("This is not available."), alert=True)
            return
        updated = await ps.set_timezone(rt, patient, ps.COMMON_TIMEZONES[idx])
        await ps.set_pending(rt, chat_id, None)
        await _done(rt, chat_id, message_id, updated)
        return
    else:
        await toast(update, _("This is not available."), alert=True)
        return
    if message_id is not None:
        await edit(rt, chat_id, message_id, text, buttons)
    else:
        await say(rt, chat_id, text, buttons)


async def _done(rt: Runtime, chat_id: int, message_id: int | None, patient: Patient) -> None:
    _ = t(patient.lang)
    text, buttons = menu(_, patient)
    text = _("Saved.") + "\n\n" + text
    if message_id is not None:
        await edit(rt, chat_id, message_id, text, buttons)
    else:
        await say(rt, chat_id, text, buttons)


async def on_pending_text(
    update: Update, context: ContextTypes.DEFAULT_TYPE, patient: Patient, kind: str, text: str
) -> None:
    rt = runtime(context)
    _ = tr(update, patient)
    chat_id = patient.chat_id or 0
    if kind == "prompt_time":
        try:
            at = parse_hhmm(text.replace("：", ":"))
        except ValueError:
            await say(rt, chat_id, _("Please type the time as hours:minutes, like 20:30."))
            return
        updated = await ps.set_prompt_time(rt, patient, at)
    else:
        try:
            check_timezone(text.strip())
        except EnrolError:
            await say(
                rt,
                chat_id,
                _(
                    "I don't know that time zone. Please type a name like Asia/Shanghai or "
                    "Europe/London, or tap one of the buttons."
                ),
            )
            return
        updated = await ps.set_timezone(rt, patient, text.strip())
    await ps.set_pending(rt, chat_id, None)
    await _done(rt, chat_id, None, updated)
