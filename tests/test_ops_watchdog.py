"""`diarybot watchdog`: e-mail through a real local SMTP server (aiosmtpd) with STARTTLS and
a login, once per incident; the database is all it reads."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from bot import messenger
from bot.channels.base import Transient
from bot.channels.email import parse_smtp_url, send_email
from bot.cli import main
from bot.clock import iso
from bot.messenger import Priority
from bot.ops import watchdog
from bot.ops.monitor import LAST_POLL_KEY
from storage import repo
from tests.harness import Harness
from tests.ops_http_support import ops_for

USER, PASSWORD = "study@h.example", "s3cr3t pass"


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str], bool]] = field(default_factory=list)  # from, to, tls

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.envelopes.append(
            (envelope.mail_from, list(envelope.rcpt_tos), session.ssl is not None)
        )
        return "250 OK"


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int
    cafile: Path
    logins: list[str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """aiosmtpd on loopback: STARTTLS required, AUTH LOGIN/PLAIN only after it."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    logins: list[str] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            logins.append(auth.login.decode())
        return AuthResult(success=ok, handled=False)

    inbox = Inbox()
    port = _free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield SmtpServer(inbox, port, cafile, logins)
    finally:
        controller.stop()


def smtp_url(server: SmtpServer) -> str:
    return (
        f"smtp+starttls://study%40h.example:s3cr3t%20pass@127.0.0.1:{server.port}"
        "?from=diarybot@h.example"
    )


@pytest.fixture
def trusted(smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> SmtpServer:
    """The test CA is trusted the way a hospital CA would be: in the default CA file."""
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cafile))
    return smtp


async def test_watchdog_mail_goes_over_starttls_with_a_login(
    smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the server's certificate is checked: without the hospital's CA, nothing is sent
    with pytest.raises(Transient):
        await send_email(smtp_url(smtp), "team@h.example", "subject", "body")
    assert smtp.inbox.messages == []
    monkeypatch.setenv("SSL_CERT_FILE", str(smtp.cafile))
    await send_email(smtp_url(smtp), "team@h.example", "subject", "body")
    assert smtp.inbox.envelopes == [("diarybot@h.example", ["team@h.example"], True)]
    assert smtp.logins == [USER]


async def test_stale_polling_and_stuck_urgent_alert_mailed_once_per_incident(
    harness: Harness, trusted: SmtpServer
) -> None:
    h, smtp = harness, trusted
    cfg = parse_smtp_url(smtp_url(smtp))

    async def mailer(subject: str, body: str) -> None:
        await send_email(cfg, "team@h.example", subject, body)

    limit = timedelta(minutes=10)
    async with ops_for(h) as ops:
        await h.api.wait_until(lambda: ops.monitor.last_poll_ok is not None)
        await h.advance(minutes=1)  # a tick writes the last poll to the database
        assert await repo.meta_get(h.rt.db.conn, LAST_POLL_KEY) == iso(h.clock.now())
        out = await watchdog.check(h.rt, limit, mailer)
        assert out.findings == [] and not out.mailed
        # the bot is gone (no more ticks, nothing recorded): 11 minutes later
        await ops.stop()
    for hook in list(h.bot.scheduler.hooks):
        if getattr(hook, "__self__", None) is ops.monitor:
            h.bot.scheduler.hooks.remove(hook)
    await h.clock.advance(minutes=11)
    out = await watchdog.check(h.rt, limit, mailer)
    assert [f.kind for f in out.findings] == ["polling"] and out.mailed
    [mail] = smtp.inbox.messages
    assert "the bot is not polling" in mail["Subject"]
    body = mail.get_content()
    assert "not polled Telegram for 11 minutes" in body
    # the same incident: no second mail, however often the watchdog runs
    await h.clock.advance(minutes=5)
    out = await watchdog.check(h.rt, limit, mailer)
    assert out.findings and not out.mailed and len(smtp.inbox.messages) == 1
    # a new problem: an urgent alert stuck for more than 10 minutes -> one more mail
    h.api.faults.error_5xx_fraction = 1.0
    async with h.rt.db.transaction() as conn:
        await messenger.enqueue(conn, h.clock.now(), 9001, "urgent", priority=Priority.URGENT)
    await h.clock.advance(minutes=11)
    out = await watchdog.check(h.rt, limit, mailer)
    assert [f.kind for f in out.findings] == ["polling", "urgent"] and out.new == ["urgent"]
    assert len(smtp.inbox.messages) == 2
    assert "urgent alerts are stuck" in smtp.inbox.messages[1]["Subject"]
    assert "RP-" not in smtp.inbox.messages[1].get_content()  # no patient named
    # both resolved: the incidents close (audited), no mail
    h.api.faults.error_5xx_fraction = 0.0
    async with h.rt.db.transaction() as conn:
        await conn.execute("UPDATE outbox SET status = 'sent' WHERE priority = 0")
        await repo.meta_set(conn, LAST_POLL_KEY, iso(h.clock.now()))
    out = await watchdog.check(h.rt, limit, mailer)
    assert out.findings == [] and out.resolved == ["polling", "urgent"]
    actions = [r[0] for r in await h.rows("SELECT action FROM audit WHERE actor = 'watchdog'")]
    assert actions == ["ops_incident_mailed", "ops_incident_mailed", "ops_incident_closed"]
    assert len(smtp.inbox.messages) == 2


async def test_a_failed_mail_records_nothing_and_is_retried(harness: Harness) -> None:
    h = harness
    calls: list[str] = []

    async def broken(subject: str, body: str) -> None:
        calls.append(subject)
        raise ConnectionRefusedError("no SMTP server")

    with pytest.raises(ConnectionRefusedError):
        await watchdog.check(h.rt, timedelta(minutes=10), broken)  # never polled (no ops)
    assert await repo.meta_get(h.rt.db.conn, watchdog.STATE_KEY) is None
    with pytest.raises(ConnectionRefusedError):
        await watchdog.check(h.rt, timedelta(minutes=10), broken)
    assert len(calls) == 2


@contextlib.contextmanager
def env(monkeypatch: pytest.MonkeyPatch, db: Path, **values: str) -> Iterator[None]:
    monkeypatch.setenv("DIARYBOT_DB", str(db))
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    for key in ("DIARYBOT_SMTP_URL", "DIARYBOT_ALERT_EMAIL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    yield


def test_cli_watchdog_mails_once_and_exits_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trusted: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    smtp = trusted
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "bot.sqlite3"
    with env(monkeypatch, db):
        assert main(["staff", "list"]) == 0  # creates the database
    with sqlite3.connect(db) as conn:
        old = iso(datetime.now(UTC) - timedelta(minutes=30))
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (LAST_POLL_KEY, old))
    capsys.readouterr()
    with env(
        monkeypatch,
        db,
        DIARYBOT_SMTP_URL=smtp_url(smtp),
        DIARYBOT_ALERT_EMAIL="team@h.example, pi@h.example",
    ):
        assert main(["watchdog", "--minutes", "15"]) == 1
        err = capsys.readouterr().err
        assert "not polled Telegram for 30 minutes" in err and "e-mailed the study team" in err
        assert smtp.inbox.envelopes == [
            ("diarybot@h.example", ["team@h.example"], True),
            ("diarybot@h.example", ["pi@h.example"], True),
        ]
        assert main(["watchdog", "--minutes", "15"]) == 1
        assert "already e-mailed" in capsys.readouterr().err
        assert len(smtp.inbox.messages) == 2
        assert main(["watchdog", "--minutes", "45"]) == 0  # within 45 minutes: ok, resolved
        out = capsys.readouterr().out
        assert "resolved: polling" in out and "watchdog: ok" in out


def test_cli_watchdog_bad_settings_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "bot.sqlite3"
    with env(monkeypatch, db, DIARYBOT_SMTP_URL="http://x", DIARYBOT_ALERT_EMAIL="t@h"):
        assert main(["watchdog"]) == 2
        assert "DIARYBOT_SMTP_URL: expected smtp://" in capsys.readouterr().err
    with env(monkeypatch, db), pytest.raises(SystemExit) as exc:
        main(["watchdog", "--minutes", "0"])
    assert exc.value.code == 2
