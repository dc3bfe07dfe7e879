"""E-mail through SMTP for the watchdog (standard library `smtplib`, run in a thread).

`DIARYBOT_SMTP_URL`:
- `smtp://user:password@mail.hospital.example:587` — STARTTLS, required: the password never
  crosses the network in clear (the default; port 587 when none is given);
- `smtps://user:password@mail.hospital.example:465` — TLS from the first byte;
- `smtp+plain://localhost:25` — no TLS at all, only for a relay on the same machine.
User and password are URL-encoded (`%40` for `@`). `DIARYBOT_SMTP_CAFILE`: a CA bundle for a
server whose certificate comes from the hospital's own CA. `DIARYBOT_ALERT_FROM`: the sender
(default `diarybot@<host name>`).
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

PORTS = {"smtp": 587, "smtps": 465, "smtp+plain": 25}


class MailConfigError(ValueError):
    """A malformed DIARYBOT_SMTP_URL or address (one line for the operator)."""


@dataclass(frozen=True)
class SmtpConfig:
    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None
    cafile: str | None = None

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return f"SmtpConfig({self.scheme}://{self.host}:{self.port}, user={self.user!r})"


def parse_smtp_url(url: str, cafile: str | None = None) -> SmtpConfig:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in PORTS:
        raise MailConfigError(
            "DIARYBOT_SMTP_URL must start with smtp:// (STARTTLS), smtps:// or smtp+plain://"
        )
    if not parts.hostname:
        raise MailConfigError("DIARYBOT_SMTP_URL has no host (smtp://user:pass@host:587)")
    try:
        port = parts.port or PORTS[scheme]
    except ValueError:
        raise MailConfigError("DIARYBOT_SMTP_URL has a bad port") from None
    return SmtpConfig(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        cafile=cafile or None,
    )


def parse_recipients(text: str) -> list[str]:
    found = [a.strip() for a in text.replace(";", ",").split(",") if a.strip()]
    if not found or any("@" not in a or " " in a for a in found):
        raise MailConfigError("DIARYBOT_ALERT_EMAIL: one or more addresses separated by commas")
    return found


def default_sender() -> str:
    return f"diarybot@{socket.getfqdn() or 'localhost'}"


def _send(cfg: SmtpConfig, msg: EmailMessage, timeout: float) -> None:
    context = ssl.create_default_context(cafile=cfg.cafile)
    client: smtplib.SMTP
    if cfg.scheme == "smtps":
        client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
    with client:
        client.ehlo()
        if cfg.scheme == "smtp":
            if not client.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError(
                    f"{cfg.host}:{cfg.port} does not offer STARTTLS (use smtps:// or a relay)"
                )
            client.starttls(context=context)
            client.ehlo()
        if cfg.user:
            client.login(cfg.user, cfg.password or "")
        client.send_message(msg)


async def send_mail(
    cfg: SmtpConfig,
    sender: str,
    recipients: list[str],
    subject: str,
    body: str,
    *,
    seconds: float = 30.0,
) -> None:
    """Send one plain-text message; raises smtplib/ssl/OSError errors as they come."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg.set_content(body)
    await asyncio.to_thread(_send, cfg, msg, seconds)
