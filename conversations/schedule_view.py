"""The patient's side of the follow-up: /schedule, visit reminders, the closing message, and the
polite notices when the study team pauses, resumes, withdraws or re-anchors them.

Views return plain text built from gettext msgids; the handler at the bottom is thin.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from telegram import Update
from telegram.ext import ContextTypes

from bot.domain.study import Study
from bot.followup.overview import Overview, overview
from bot.i18n import T, t
from conversations import diary, diary_view
from conversations.common import current_patient, current_staff, runtime, say, tr
from storage.repo import OccRow, Patient

DONE = "✅"
MISSED = "▫️"  # gentle: a missed diary is not a failure to point at


def _visit_name(_: T, study: Study, code: str, fallback: str) -> str:
    for v in study.visits:
        if v.code == code:
            return _(v.name)
    return _(fallback)


def streak_line(_: T, ov: Overview) -> str:
    comp = ov.compliance
    if not comp.recent:
        return _("No diaries are finished yet.")
    marks = "".join(DONE if s == "completed" else MISSED for s in comp.recent)
    if comp.summary.streak >= 2:
        text = _("{n} diaries in a row. Well done!", n=comp.summary.streak)
    elif comp.summary.missed_in_a_row:
        text = _("Your last diary was missed. That's all right: the next one is a fresh start.")
    else:
        text = _("Thank you for your last diary.")
    return _("Your recent diaries: {marks}", marks=marks) + "\n" + text


def next_diary_line(_: T, patient: Patient, ov: Overview) -> str:
    occ = ov.open_now
    if occ is not None:
        return _(
            "Your diary is open now, until {time} on {date}. Send /diary to fill it in.",
            time=_.clock(occ.closes_at, patient.timezone),
            date=_.date(occ.closes_at.astimezone(ZoneInfo(patient.timezone)).date()),
        )
    return diary_view.next_due(_, patient, ov.next_occ)


def visit_line(_: T, ov: Overview) -> str:
    v = ov.next_visit
    if v is None:
        return _("There are no more study visits planned.")
    return _(
        "Next visit: {visit} on {date} (any day from {start} to {end}).",
        visit=_(v.name),
        date=_.date(v.target_date),
        start=_.date(v.window_start),
        end=_.date(v.window_end),
    )


def schedule_text(_: T, study: Study, ov: Overview) -> str:
    patient = ov.patient
    lines = ["📅 " + _("Your schedule")]
    if patient.status == "withdrawn":
        lines.append(_("You no longer receive diaries. Thank you very much for your help."))
        return "\n".join(lines)
    if patient.status == "completed":
        lines.append(_("Your follow-up is complete. Thank you very much for your help."))
        return "\n".join(lines)
    if ov.phase is not None:
        lines.append(_("Today is study day {day}: {phase}.", day=ov.day, phase=_(ov.phase.name)))
    else:
        lines.append(_("Today is study day {day}.", day=ov.day))
    if patient.status == "paused":
        lines.append(
            _("Your diary is paused for now. The study team will tell you when it restarts.")
        )
    else:
        lines.append(next_diary_line(_, patient, ov))
    lines += [visit_line(_, ov), "", streak_line(_, ov)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- scheduled texts


def visit_reminder_text(_: T, study: Study, data: dict[str, Any]) -> str:
    name = _visit_name(_, study, str(data.get("visit", "")), str(data.get("name", "")))
    target = _.date(date.fromisoformat(data["target"]))
    if int(data.get("days_before", 0)) == 1:
        first = _("Reminder: your {visit} is tomorrow, {date}.", visit=name, date=target)
    else:
        first = _(
            "Reminder: your {visit} is in {n} days, on {date}.",
            visit=name,
            n=data.get("days_before"),
            date=target,
        )
    return "\n".join(
        [
            "🏥 " + first,
            _(
                "The clinic can see you on any day from {start} to {end}.",
                start=_.date(date.fromisoformat(data["start"])),
                end=_.date(date.fromisoformat(data["end"])),
            ),
            _(
                "If your appointment is not booked yet, please call the study team: {phone}",
                phone=study.contact_phone,
            ),
        ]
    )


def closing_text(_: T, study: Study) -> str:
    return "\n".join(
        [
            "🎉 "
            + _(
                "Today is day {day} of the study: your diary follow-up is complete.",
                day=study.closing_day,
            ),
            _(
                "Thank you very much for every diary you filled in. Your answers help make this "
                "treatment safer for other patients."
            ),
            _("I will not send you any more diaries. Your study team will stay in touch."),
            _("Study team phone: {phone}", phone=study.contact_phone),
        ]
    )


# --------------------------------------------------------------------------- notices


def paused_notice(_: T, study: Study) -> str:
    return "\n".join(
        [
            _(
                "Your study team has paused your diary for now. I will not send you diaries "
                "until it starts again. You don't need to do anything."
            ),
            _("Study team phone: {phone}", phone=study.contact_phone),
        ]
    )


def resumed_notice(_: T, patient: Patient, nxt: OccRow | None, open_now: OccRow | None) -> str:
    lines = [_("Your diary starts again. Thank you for continuing!")]
    if open_now is not None and open_now.form == "weekly":
        lines.append(_("This week's diary is open now: send /diary to fill it in."))
    elif open_now is not None:
        lines.append(_("Today's diary is open now: send /diary to fill it in."))
    else:
        lines.append(diary_view.next_due(_, patient, nxt))
    return "\n".join(lines)


def withdrawn_notice(_: T, study: Study) -> str:
    return "\n".join(
        [
            _(
                "Your study team has told me that you no longer take part in the diary, so I "
                "will not send you any more diaries. Thank you very much for your help."
            ),
            _("Study team phone: {phone}", phone=study.contact_phone),
        ]
    )


def reanchored_notice(_: T, patient: Patient, nxt: OccRow | None) -> str:
    return "\n".join(
        [
            _(
                "Your study team has updated your schedule: your treatment day (day 0) is now "
                "{date}.",
                date=_.date(patient.injection_date),
            ),
            diary_view.next_due(_, patient, nxt),
        ]
    )


# --------------------------------------------------------------------------- handler


async def on_schedule(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/schedule: next diary, phase, next visit and the recent streak."""
    rt = runtime(context)
    patient = await current_patient(rt, update)
    if patient is None:
        staff = await current_staff(rt, update)
        if staff is not None and update.effective_chat is not None:
            _ = t(staff.lang)
            text = _("/schedule is the patients' view. For one patient, send /compliance RP-001.")
            await say(rt, update.effective_chat.id, text)
            return
    if patient is None or patient.status == "invited":
        await diary.not_enrolled(update, context)
        return
    ov = await overview(rt.db.conn, rt.study, patient, rt.now())
    await say(rt, patient.chat_id or 0, schedule_text(tr(update, patient), rt.study, ov))
