"""Handing over a one-time invitation: by email when SMTP is configured, else shown once.

The link is a secret, so it is sent straight through SMTP and never put in the outbox (whose
texts are kept for a while): if the mail server refuses, the admin is shown the link instead.
"""

from __future__ import annotations

import logging
import os

from bot.channels.base import Rejected, Transient
from bot.channels.email import send_email
from bot.console.accounts import INVITE_VALID
from bot.i18n import t

log = logging.getLogger(__name__)


def invite_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/console/invite/{token}"


def public_base() -> str:
    return os.environ.get("DIARYBOT_PUBLIC_URL", "http://127.0.0.1:8090").rstrip("/")


async def email_invite(email: str, name: str, lang: str, url: str) -> bool:
    """True when the mail server accepted the invitation."""
    smtp = os.environ.get("DIARYBOT_SMTP_URL", "").strip()
    if not smtp:
        return False
    _ = t(lang)
    body = "\n\n".join(
        [
            _("Dear {name},", name=name),
            _(
                "You have been invited to the study console of NCT06438809. Open this link to "
                "set your password and your authenticator app (valid {hours} hours, once only):",
                hours=int(INVITE_VALID.total_seconds() // 3600),
            ),
            url,
            _("If you did not expect this message, ignore it and tell the study team."),
        ]
    )
    try:
        await send_email(smtp, email, _("Your account for the NCT06438809 study console"), body)
    except (Transient, Rejected, ValueError) as exc:
        log.warning("invitation email to a staff member not sent: %s", type(exc).__name__)
        return False
    return True
