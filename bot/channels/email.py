"""E-mail through SMTP, configured by one URL: `DIARYBOT_SMTP_URL`.

    smtp://mail.example.cn:25                       plain, STARTTLS when the server offers it
                                                    (a password is only ever sent encrypted)
    smtp+starttls://user:password@host:587          STARTTLS required
    smtps://user:password@host:465                  TLS from the first byte
    ?from=diary@example.cn                          the sender (default: the user, or diarybot@host)

`send_email(url, to, subject, body)` is the one sender (the alert route here and the watchdog
both use it): stdlib smtplib in a worker thread, so the event loop never blocks. The password
is never logged.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from bot.channels.base import Envelope, Rejected, Transient


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # plain | starttls | tls
    user: str | None
    password: str | None
    sender: str

    def __repr__(self) -> str:
        return f"SmtpConfig(host={self.host!r}, port={self.port}, security={self.security!r})"


def parse_smtp_url(url: str) -> SmtpConfig:
    parts = urlsplit(url)
    schemes = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError("DIARYBOT_SMTP_URL: expected smtp://, smtp+starttls:// or smtps://host")
    security, default_port = schemes[parts.scheme]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    query = parse_qs(parts.query)
    sender = (query.get("from") or [""])[0] or (
        user if user and "@" in user else f"diarybot@{parts.hostname}"
    )
    return SmtpConfig(parts.hostname, parts.port or default_port, security, user, password, sender)


class PasswordInClear(smtplib.SMTPException):
    """The server offered no STARTTLS and the URL has a password: refused, not sent."""


def _send_blocking(cfg: SmtpConfig, msg: EmailMessage, timeout: float) -> None:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if cfg.security == "tls":
        smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if cfg.security == "starttls" or (cfg.security == "plain" and smtp.has_extn("starttls")):
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.user and cfg.password:
            if (
                cfg.security == "plain"
                and getattr(smtp, "sock", None) is not None
                and not (isinstance(smtp.sock, ssl.SSLSocket))
            ):
                # A server that did not offer STARTTLS: never send the password in clear.
                raise PasswordInClear
            smtp.login(cfg.user, cfg.password)
        smtp.send_message(msg)


async def send_email(
    cfg: SmtpConfig | str, to: str, subject: str, body: str, *, seconds: float = 30.0
) -> None:
    """Send one plain-text e-mail. Raises Transient (retry) or Rejected (this address never)."""
    config = parse_smtp_url(cfg) if isinstance(cfg, str) else cfg
    msg = EmailMessage()
    msg["From"] = config.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2] or None)
    msg.set_content(body)
    try:
        await asyncio.to_thread(_send_blocking, config, msg, seconds)
    except PasswordInClear as exc:
        raise Rejected(
            "SMTP: the server offers no STARTTLS; the password is not sent unencrypted"
            " (use smtps:// or a server with STARTTLS)"
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(500 <= c < 600 for c in codes):
            raise Rejected("the mail server refused the recipient") from exc
        raise Transient("the mail server deferred the recipient") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise Transient(f"SMTP: {type(exc).__name__}") from exc


class EmailRoute:
    channel = "email"

    def __init__(self, smtp_url: str, *, rate: float = 1.0, burst: int = 5) -> None:
        self.config = parse_smtp_url(smtp_url)
        self.rate = rate
        self.burst = burst

    async def send(self, env: Envelope) -> None:
        p = env.payload
        await send_email(self.config, env.destination, str(p["subject"]), str(p["body"]))

    async def close(self) -> None:
        return None
