"""Staff side of the follow-up in Telegram: /pause, /resume, /withdraw, /reanchor, /compliance.
(The texts of the coordinator digest: conversations/digest_view.py.)

Handlers are thin: check the caller is active staff (`repo.staff_by_id`; anyone else gets the
audited "not available"), parse the arguments, call `bot.followup.lifecycle`, answer in the
staff member's language. Withdraw and re-anchor cannot be undone, so they ask for a Confirm tap
first (`bot.followup.confirmations`). Every refusal is a clear line and changes nothing.
"""

from __future__ import annotations

from datetime import date

from telegram import Update
from telegram.ext import ContextTypes

from bot.domain.compliance import Ratio
from bot.escalation.permissions import STUDY, VIEW
from bot.followup import confirmations, lifecycle
from bot.followup.compliance_report import PatientCompliance, all_compliance, patient_compliance
from bot.followup.lifecycle import Change, LifecycleError
from bot.i18n import T, t
from bot.messenger import Buttons
from bot.services.runtime import Runtime
from conversations.callbacks import Callback, make
from conversations.common import edit, runtime, say, toast
from conversations.staff import authorize
from storage import repo

AREA = "fu"  # callback area of this module's buttons
COMPLIANCE_LIMIT = 40  # patients listed by /compliance


# --------------------------------------------------------------------------- texts


def ratio(_: T, r: Ratio) -> str:
    if r.percent is None:
        return "–"
    return _("{done}/{due} ({percent}%)", done=r.completed, due=r.due, percent=round(r.percent))


def compliance_line(_: T, c: PatientCompliance, threshold: int) -> str:
    s = c.summary
    flag = "⚠️ " if s.missed_in_a_row >= threshold else ""
    return flag + _(
        "{subject}: 7 days {week} · 30 days {month} · overall {overall}",
        subject=c.subject,
        week=ratio(_, s.last_7_days),
        month=ratio(_, s.last_30_days),
        overall=ratio(_, s.overall),
    )


def compliance_detail(_: T, c: PatientCompliance, phase_names: dict[str, str]) -> str:
    s = c.summary
    lines = [
        _(
            "Compliance of {subject} (completed / due), study day {day}:",
            subject=c.subject,
            day=c.today_day,
        ),
        _("Last 7 days: {r}", r=ratio(_, s.last_7_days)),
        _("Last 30 days: {r}", r=ratio(_, s.last_30_days)),
    ]
    for code, r in s.by_phase.items():
        lines.append(_("{phase}: {r}", phase=_(phase_names.get(code, code)), r=ratio(_, r)))
    lines.append(_("Overall: {r}", r=ratio(_, s.overall)))
    if s.missed_in_a_row:
        lines.append(_("Missed in a row now: {n}", n=s.missed_in_a_row))
    elif s.streak:
        lines.append(_("Completed in a row now: {n}", n=s.streak))
    if c.status != "active":
        lines.append(_("Status: {status}", status=_status(_, c.status)))
    return "\n".join(lines)


def _status(_: T, status: str) -> str:
    names = {
        "invited": _("invited, not yet joined"),
        "active": _("active"),
        "paused": _("paused"),
        "withdrawn": _("withdrawn"),
        "completed": _("follow-up completed"),
    }
    return names.get(status, status)


def change_text(_: T, c: Change) -> str:
    if c.action == "pause":
        text = _(
            "{subject} is paused; {n} open or coming diaries are paused.",
            subject=c.subject,
            n=c.occurrences,
        )
    elif c.action == "resume":
        text = _("{subject} is active again.", subject=c.subject)
    elif c.action == "withdraw":
        text = _(
            "{subject} is withdrawn: no more diaries or reminders. All data are kept.",
            subject=c.subject,
        )
    else:
        text = _(
            "Day 0 of {subject} moved from {old} to {new}: {removed} future diaries removed, "
            "{added} added.",
            subject=c.subject,
            old=c.detail["old_date"],
            new=c.detail["new_date"],
            removed=c.detail["removed"],
            added=c.detail["added"],
        )
    told = (
        _("The patient has been told.")
        if c.notified
        else _("The patient was not messaged (no reachable chat).")
    )
    return f"{text}\n{told}"


USAGE = {
    "pause": "/pause RP-001 [reason]",
    "resume": "/resume RP-001 [reason]",
    "withdraw": "/withdraw RP-001 [reason]",
    "reanchor": "/reanchor RP-001 2026-12-10 [reason]",
}


def usage(_: T, command: str) -> str:
    return _("Please write it like this: {example}", example=USAGE[command])


# --------------------------------------------------------------------------- handlers


async def _staff(
    update: Update, context: ContextTypes.DEFAULT_TYPE, what: str, action: str = STUDY
) -> tuple[Runtime, repo.Staff, int] | None:
    """The caller if their role may do `action` (refused and audited otherwise)."""
    rt = runtime(context)
    chat = update.effective_chat
    staff = await authorize(update, context, action, what)
    if staff is None or chat is None:
        return None
    return rt, staff, chat.id


def _args(context: ContextTypes.DEFAULT_TYPE) -> list[str]:
    return list(context.args or [])


def _reason(args: list[str]) -> str | None:
    text = " ".join(args).strip()
    return text[:500] or None


async def on_pause(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _simple(update, context, "pause")


async def on_resume(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _simple(update, context, "resume")


async def _simple(update: Update, context: ContextTypes.DEFAULT_TYPE, command: str) -> None:
    got = await _staff(update, context, f"/{command}")
    if got is None:
        return
    rt, staff, chat_id = got
    _ = t(staff.lang)
    args = _args(context)
    if not args:
        await say(rt, chat_id, usage(_, command))
        return
    action = lifecycle.pause if command == "pause" else lifecycle.resume
    try:
        change = await action(
            rt, args[0], actor=f"staff:{staff.telegram_id}", reason=_reason(args[1:])
        )
    except LifecycleError as exc:
        await say(rt, chat_id, exc.text(_))
        return
    await say(rt, chat_id, change_text(_, change))


async def on_withdraw(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    got = await _staff(update, context, "/withdraw")
    if got is None:
        return
    rt, staff, chat_id = got
    _ = t(staff.lang)
    args = _args(context)
    if not args:
        await say(rt, chat_id, usage(_, "withdraw"))
        return
    try:
        patient = await lifecycle.find_patient(rt.db.conn, args[0])
        lifecycle.check_withdraw(patient)
    except LifecycleError as exc:
        await say(rt, chat_id, exc.text(_))
        return
    reason = _reason(args[1:])
    cid = await confirmations.create(
        rt, staff.telegram_id, "withdraw", patient.subject, None, reason
    )
    text = _(
        "Withdraw {subject} from the diary? No more diaries or reminders will be sent; all data "
        "are kept. This cannot be undone.",
        subject=patient.subject,
    )
    await say(
        rt,
        chat_id,
        text,
        _confirm_buttons(_, cid, _("Withdraw {subject}", subject=patient.subject)),
    )


async def on_reanchor(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    got = await _staff(update, context, "/reanchor")
    if got is None:
        return
    rt, staff, chat_id = got
    _ = t(staff.lang)
    args = _args(context)
    if len(args) < 2:
        await say(rt, chat_id, usage(_, "reanchor"))
        return
    try:
        new_date = date.fromisoformat(args[1])
    except ValueError:
        await say(
            rt, chat_id, _("{value} is not a date. Please write it as YYYY-MM-DD.", value=args[1])
        )
        return
    try:
        patient = await lifecycle.find_patient(rt.db.conn, args[0])
        lifecycle.check_reanchor(rt, patient, new_date, rt.now())
    except LifecycleError as exc:
        await say(rt, chat_id, exc.text(_))
        return
    reason = _reason(args[2:])
    cid = await confirmations.create(
        rt, staff.telegram_id, "reanchor", patient.subject, new_date.isoformat(), reason
    )
    text = _(
        "Move day 0 of {subject} from {old} to {new}? Diaries and visit reminders from now on "
        "will follow the new date; entries already made stay as they are.",
        subject=patient.subject,
        old=patient.injection_date.isoformat(),
        new=new_date.isoformat(),
    )
    await say(rt, chat_id, text, _confirm_buttons(_, cid, _("Move day 0")))


def _confirm_buttons(_: T, cid: int, label: str) -> Buttons:
    return [[(label, make(AREA, "ok", cid)), (_("Cancel"), make(AREA, "no", cid))]]


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE, cb: Callback) -> None:
    """Confirm / Cancel of a pending withdraw or re-anchor."""
    got = await _staff(update, context, f"{AREA}:{cb.verb}")
    if got is None:
        return
    rt, staff, chat_id = got
    _ = t(staff.lang)
    cid = cb.int_arg(0)
    query = update.callback_query
    message_id = query.message.message_id if query and query.message else None
    pending = (
        await confirmations.claim(rt, cid, staff.telegram_id)
        if cid is not None and cb.verb in ("ok", "no")
        else None
    )
    if pending is None:
        await toast(
            update, _("This button is no longer valid. Please send the command again."), alert=True
        )
        if message_id is not None and query and query.message:
            old = getattr(query.message, "text", None)
            if old:
                await edit(rt, chat_id, message_id, old, None)
        return
    await toast(update)
    if cb.verb == "no":
        result = _("Cancelled. Nothing was changed.")
    else:
        actor = f"staff:{staff.telegram_id}"
        try:
            if pending.action == "withdraw":
                change = await lifecycle.withdraw(
                    rt, pending.subject, actor=actor, reason=pending.reason
                )
            else:
                assert pending.argument is not None
                change = await lifecycle.reanchor_patient(
                    rt,
                    pending.subject,
                    date.fromisoformat(pending.argument),
                    actor=actor,
                    reason=pending.reason,
                )
            result = change_text(_, change)
        except LifecycleError as exc:
            result = exc.text(_)
    if message_id is not None:
        await edit(rt, chat_id, message_id, result, None)
    else:
        await say(rt, chat_id, result)


async def on_compliance(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/compliance: one line per active or paused patient; /compliance RP-001: the details."""
    got = await _staff(update, context, "/compliance", VIEW)
    if got is None:
        return
    rt, staff, chat_id = got
    _ = t(staff.lang)
    args = _args(context)
    now = rt.now()
    threshold = rt.study.missed_in_a_row_alert
    if args:
        try:
            patient = await lifecycle.find_patient(rt.db.conn, args[0])
        except LifecycleError as exc:
            await say(rt, chat_id, exc.text(_))
            return
        c = await patient_compliance(rt.db.conn, patient, now)
        names = {p.code: p.name for p in rt.study.phases}
        await say(rt, chat_id, compliance_detail(_, c, names))
        return
    rows = await all_compliance(rt.db.conn, now)
    if not rows:
        await say(rt, chat_id, _("No active or paused patients yet."))
        return
    lines = [_("Compliance (completed / due):")]
    lines += [compliance_line(_, c, threshold) for c in rows[:COMPLIANCE_LIMIT]]
    if len(rows) > COMPLIANCE_LIMIT:
        lines.append(
            _("and {n} more", n=len(rows) - COMPLIANCE_LIMIT)
            + " · "
            + _("send /compliance RP-001 for one patient")
        )
    await say(rt, chat_id, "\n".join(lines))
