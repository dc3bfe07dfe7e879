"""Texts of data out in Telegram (pure: a translator in, text out), shared by the handlers
and the sandbox's /screens page (bot/dataout/screens.py)."""

from __future__ import annotations

from bot.i18n import T


def export_refused(_: T, code: str) -> str:
    """A bad /export request: `code` from exports.RequestError (usage | date | twice)."""
    if code == "date":
        return _("Please give the date as YYYY-MM-DD, like 2026-12-01.")
    if code == "twice":
        return _("Give at most one subject and one date.")
    return _("Usage: /export csv|odm|fhir [RP-001] [2026-12-01]")


def no_patient(_: T, subject: str) -> str:
    return _("No patient {subject}.", subject=subject[:24])


def export_preparing(_: T, fmt: str) -> str:
    return _("Preparing the {format} export…", format=fmt.upper())


def export_caption(_: T, fmt: str, subjects: int, diaries: int) -> str:
    return _(
        "{format} export. Subjects: {subjects}. Diaries: {diaries}.",
        format=fmt.upper(),
        subjects=subjects,
        diaries=diaries,
    )


def audit_head_line(_: T, head: str) -> str:
    """The audit trail's head ("<id> <hash>") as staff see it, to check with `audit verify`."""
    number, _sep, digest = head.partition(" ")
    return _("Audit trail head: {head}", head=f"{number}:{digest}")


def export_too_large(_: T) -> str:
    return _(
        "This export is too large for Telegram. Please use `diarybot export` on the"
        " server, or export one subject or a shorter period."
    )


def export_failed(_: T) -> str:
    return _("The export failed. Please try again or tell the admin.")


def chart_caption(_: T, subject: str) -> str:
    return _("Diary of {subject}", subject=subject)


def progress_nothing_yet(_: T) -> str:
    return _("There is nothing to show yet. Your chart appears after your first diary.")


def progress_caption(_: T, days: int) -> str:
    return _("Your diary: the last {days} days", days=days)
