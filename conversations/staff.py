"""Staff side in Telegram: help for now; alerts and study controls plug in here."""

from __future__ import annotations

from bot.i18n import T


def staff_help(_: T) -> str:
    return "\n".join(
        [
            _("You are registered as study staff."),
            _("/alerts – open alerts, oldest first"),
            _("/patients – one line per patient"),
            _("/patient RP-001 – the last 14 days of one patient"),
            _("/enroll RP-004 2026-12-10 zh – enrol a patient and get the code"),
        ]
    )
