"""Refusals and notices of the console, by code (the services raise codes, not texts)."""

from __future__ import annotations

from bot.i18n import N_, T

MESSAGES = {
    "login_failed": N_("The email, password or code is not correct."),
    "locked": N_(
        "This account is locked after 5 failed sign-ins. Ask an administrator for a new "
        "invitation link."
    ),
    "invite_invalid": N_("This link is not valid any more. Ask an administrator for a new one."),
    "code_wrong": N_("That code is not correct. Enter the 6 digits your app shows now."),
    "password_short": N_("The password needs at least 12 characters."),
    "password_long": N_("The password is too long (at most 256 characters)."),
    "password_common": N_("This password is on a list of common passwords. Choose another."),
    "password_weak": N_(
        "This password is too easy to guess. Use a longer phrase of unrelated words."
    ),
    "password_mismatch": N_("The two passwords are not the same."),
    "bad_role": N_("Unknown role."),
    "bad_email": N_("This is not an email address."),
    "email_taken": N_("Another staff member already has this email address."),
    "csrf": N_(
        "This form has expired or did not come from this page. Go back, reload the page and "
        "try again."
    ),
    "forbidden": N_("Your role does not allow this."),
    "too_large": N_("This form is too large."),
    "too_many": N_("Too many attempts from this address. Please wait a minute and try again."),
    "not_found": N_("Not found."),
    "stale": N_("This alert has changed in the meantime; here is its current state."),
    "note_empty": N_("The note is empty."),
    "note_long": N_("The note is too long (at most 1,000 characters)."),
    "link_invalid": N_(
        "This alert link is not valid. Open the alert in the study console or ask the study team."
    ),
    "link_used": N_(
        "This alert link has already been used. The alert is in the study console; sign in "
        "there to see it."
    ),
    "link_expired": N_(
        "This alert link has expired. The alert is in the study console; sign in there to see it."
    ),
    "signature_failed": N_("The password is not correct: nothing was signed or changed."),
}


def message(_: T, code: str) -> str:
    return _(MESSAGES.get(code, MESSAGES["not_found"]))


ROLE_LABELS = {
    "coordinator": N_("coordinator"),
    "investigator": N_("investigator"),
    "admin": N_("administrator"),
    "monitor": N_("monitor (read-only)"),
}


def role_label(_: T, role: str) -> str:
    return _(ROLE_LABELS[role]) if role in ROLE_LABELS else role


DIARY_STATUS = {
    "completed": N_("submitted"),
    "incomplete": N_("incomplete"),
    "missed": N_("missed"),
    "scheduled": N_("open"),
    "prompted": N_("open"),
    "reminded": N_("open"),
    "paused": N_("paused"),
    "withdrawn": N_("withdrawn"),
}


def diary_status(_: T, status: str) -> str:
    return _(DIARY_STATUS[status]) if status in DIARY_STATUS else status
