"""`diarybot watchdog`: tells the study team by e-mail when the bot has gone quiet.

Run it from a systemd timer or cron every few minutes (deploy/diarybot-watchdog.timer). It needs
nothing of Telegram and nothing of the running bot: it reads the database only.

A problem ("incident") is either
- `polling`: the bot's last successful getUpdates (`meta.ops_last_poll_at`, written by the
  running bot at most a minute apart, bot/ops/monitor.py) is older than N minutes, or the bot
  never recorded one: nobody hears the patients, and nothing goes out;
- `urgent`: an urgent message (an alert for the study team) has been queued longer than
  N minutes: the possible-SAE path is stuck.

Each incident is e-mailed once: the state is kept in `meta.ops_watchdog` (when it began, when it
was mailed), with an audit entry. When the problem is gone, the incident is closed (audited, no
mail); when it comes back, that is a new incident and a new mail. If sending fails nothing is
recorded, so the next run tries again. The mail names no patient and carries no answer.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.channels.email import parse_smtp_url, send_email
from bot.cliargs import UsageError
from bot.clock import from_iso, iso
from bot.messenger import Priority
from bot.ops.monitor import LAST_POLL_KEY
from bot.services.runtime import Runtime
from storage import audit, repo
from storage import delivery as delivery_store

STATE_KEY = "ops_watchdog"
DEFAULT_MINUTES = 10

Mailer = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True)
class Finding:
    kind: str  # "polling" | "urgent"
    text: str


@dataclass
class Outcome:
    findings: list[Finding]
    new: list[str] = field(default_factory=list)  # incidents this run opened (and mailed)
    resolved: list[str] = field(default_factory=list)
    mailed: bool = False


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


async def find(rt: Runtime, limit: timedelta) -> list[Finding]:
    now = rt.now()
    found = []
    last = await repo.meta_get(rt.db.conn, LAST_POLL_KEY)
    if not last:
        found.append(Finding("polling", "the bot has never recorded a successful poll of Telegram"))
    elif now - from_iso(last) > limit:
        found.append(
            Finding(
                "polling",
                f"the bot has not polled Telegram for {_minutes(now - from_iso(last))} minutes"
                f" (last at {last[:16].replace('T', ' ')} UTC): patients are not being heard"
                " and nothing is sent",
            )
        )
    oldest, waiting = await delivery_store.queued_of_priority(rt.db.conn, int(Priority.URGENT))
    if oldest and now - from_iso(oldest) > limit:
        found.append(
            Finding(
                "urgent",
                f"{waiting} urgent message(s) for the study team are waiting; the oldest for"
                f" {_minutes(now - from_iso(oldest))} minutes: alerts are not reaching the team",
            )
        )
    return found


def compose(findings: list[Finding], db_path: str) -> tuple[str, str]:
    host = socket.gethostname()
    subject = f"[diarybot] needs attention on {host}: " + "; ".join(
        {"polling": "the bot is not polling", "urgent": "urgent alerts are stuck"}[f.kind]
        for f in findings
    )
    body = "\n".join(
        [
            f"The diary bot's watchdog on {host} (database {db_path}) found:",
            "",
            *(f"- {f.text}" for f in findings),
            "",
            "Until this is fixed, check on patients by phone as the protocol says.",
            "On the server:  systemctl status diarybot   and   journalctl -u diarybot -n 200",
            "(with Docker:   docker compose ps   and   docker compose logs --tail 200 diarybot).",
            "What to do: docs/deploy.md, 'When the watchdog e-mails'.",
            "",
            "This incident is e-mailed once; the next mail comes when a new problem starts.",
        ]
    )
    return subject, body


async def check(rt: Runtime, limit: timedelta, mailer: Mailer | None) -> Outcome:
    """Find problems, mail new incidents (if `mailer`), record opened and closed incidents."""
    findings = await find(rt, limit)
    state: dict[str, Any] = json.loads(await repo.meta_get(rt.db.conn, STATE_KEY) or "{}")
    out = Outcome(findings)
    current = {f.kind for f in findings}
    opened = [f.kind for f in findings if f.kind not in state]
    out.resolved = sorted(k for k in state if k not in current)
    if opened and mailer is not None:
        subject, body = compose(findings, rt.db.path)
        await mailer(subject, body)  # raises: nothing recorded, the next run tries again
        out.mailed = True
        out.new = opened
    if not out.new and not out.resolved:
        return out
    now = rt.now()
    async with rt.db.transaction() as conn:
        for kind in out.new:
            state[kind] = {"since": iso(now), "mailed_at": iso(now)}
        for kind in out.resolved:
            state.pop(kind, None)
        await repo.meta_set(conn, STATE_KEY, json.dumps(state, sort_keys=True))
        if out.new:
            await audit.record(conn, now, "watchdog", "ops_incident_mailed", new=out.new)
        if out.resolved:
            await audit.record(conn, now, "watchdog", "ops_incident_closed", new=out.resolved)
    return out


class MailConfigError(ValueError):
    """A malformed DIARYBOT_SMTP_URL or DIARYBOT_ALERT_EMAIL (one line for the operator)."""


def parse_recipients(text: str) -> list[str]:
    found = [a.strip() for a in text.replace(";", ",").split(",") if a.strip()]
    if not found or any("@" not in a or " " in a for a in found):
        raise MailConfigError("DIARYBOT_ALERT_EMAIL: one or more addresses separated by commas")
    return found


def mailer_from_env() -> Mailer | None:
    """A mailer from DIARYBOT_SMTP_URL and DIARYBOT_ALERT_EMAIL (the settings the e-mail alert
    route uses too, bot/channels/email.py); None when either is unset."""
    url = os.environ.get("DIARYBOT_SMTP_URL") or ""
    to = os.environ.get("DIARYBOT_ALERT_EMAIL") or ""
    if not url or not to:
        return None
    try:
        cfg = parse_smtp_url(url)
    except ValueError as exc:
        raise MailConfigError(str(exc)) from None
    recipients = parse_recipients(to)

    async def mail(subject: str, body: str) -> None:
        for address in recipients:
            await send_email(cfg, address, subject, body)

    return mail


async def cmd_watchdog(args: argparse.Namespace, rt: Runtime) -> int:
    minutes = args.minutes
    if minutes is None:
        text = os.environ.get("DIARYBOT_WATCHDOG_MINUTES") or str(DEFAULT_MINUTES)
        if not text.isdigit() or int(text) < 1:
            raise UsageError("DIARYBOT_WATCHDOG_MINUTES must be a whole number of minutes ≥ 1")
        minutes = int(text)
    try:
        mailer = mailer_from_env()
    except MailConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        out = await check(rt, timedelta(minutes=minutes), mailer)
    except Exception as exc:  # SMTP, TLS, network: say it, exit 1, retry next run
        for f in await find(rt, timedelta(minutes=minutes)):
            print(f"watchdog: {f.text}", file=sys.stderr)
        print(f"watchdog: e-mail failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for kind in out.resolved:
        print(f"watchdog: resolved: {kind}")
    if not out.findings:
        print(f"watchdog: ok (polling and urgent messages within {minutes} minutes)")
        return 0
    for f in out.findings:
        print(f"watchdog: {f.text}", file=sys.stderr)
    if out.mailed:
        print(f"watchdog: e-mailed the study team about: {', '.join(out.new)}", file=sys.stderr)
    elif mailer is None:
        print(
            "watchdog: not e-mailed: set DIARYBOT_SMTP_URL and DIARYBOT_ALERT_EMAIL",
            file=sys.stderr,
        )
    else:
        print("watchdog: already e-mailed for this incident", file=sys.stderr)
    return 1


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"bad number of minutes {text!r}")
    return int(text)


def add(sub: Any) -> None:
    p = sub.add_parser(
        "watchdog",
        help="e-mail the study team when the bot stopped polling or urgent alerts are stuck"
        " (for a systemd timer or cron)",
    )
    p.add_argument(
        "--minutes",
        type=_positive,
        default=None,
        help=f"how long is too long (default DIARYBOT_WATCHDOG_MINUTES or {DEFAULT_MINUTES})",
    )
    p.set_defaults(func=cmd_watchdog)
