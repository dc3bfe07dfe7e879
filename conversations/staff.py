"""Staff side in Telegram: who may do what (every staff command and button asks here), and help."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.escalation.permissions import allowed
from bot.i18n import N_, T, t
from conversations.common import current_staff, refuse_unauthorized, runtime, say, toast
from storage import audit, repo

ROLE_LABELS = {
    "coordinator": N_("coordinator"),
    "investigator": N_("investigator"),
    "admin": N_("admin"),
}


def staff_help(_: T) -> str:
    return "\n".join(
        [
            _("You are registered as study staff."),
            _("/alerts – open alerts, oldest first"),
            _("/patients – one line per patient"),
            _("/patient RP-001 – the last 14 days of one patient"),
            _("/enroll RP-004 2026-12-10 zh – enrol a patient and get the code"),
            _("/export csv|odm|fhir [RP-001] [2026-12-01] – the study data as a file"),
            _("/pause RP-001 [reason] – pause diaries; /resume RP-001 – start them again"),
            _("/withdraw RP-001 [reason] – no more diaries, data kept (asks to confirm)"),
            _("/reanchor RP-001 2026-12-10 [reason] – move day 0 (asks to confirm)"),
            _("/compliance [RP-001] – completed / due diaries per patient"),
        ]
    )


async def authorize(
    update: Update, context: ContextTypes.DEFAULT_TYPE, action: str, what: str
) -> repo.Staff | None:
    """The calling staff member if their role may do `action`; otherwise refuse and audit.

    Looked up on every call (never cached), so `diarybot staff remove` ends access at once.
    A patient or stranger gets the same "not available" as for any unknown button. Every staff
    command that is let through is audited too (`staff_access`: who looked at or changed what,
    21 CFR 11.10(e)); buttons are not, as the actions behind them audit themselves.
    """
    rt = runtime(context)
    staff = await current_staff(rt, update)
    if staff is None:
        await refuse_unauthorized(rt, update, what)
        return None
    if allowed(staff.role, action):
        if update.callback_query is None:
            message = update.effective_message
            async with rt.db.transaction() as conn:
                await audit.record(
                    conn,
                    rt.now(),
                    f"staff:{staff.telegram_id}",
                    "staff_access",
                    entity=what,
                    new=(message.text or "")[:200] if message else None,
                )
        return staff
    async with rt.db.transaction() as conn:
        await audit.record(
            conn,
            rt.now(),
            f"staff:{staff.telegram_id}",
            "unauthorized",
            entity=what,
            new=staff.role,
        )
    _ = t(staff.lang)
    text = _("Your role ({role}) cannot do this.", role=_(ROLE_LABELS.get(staff.role, staff.role)))
    if update.callback_query is not None:
        await toast(update, text, alert=True)
    elif update.effective_chat is not None:
        await say(rt, update.effective_chat.id, text)
    return None
