"""Alert routes beyond Telegram: each configured route gets every alert, in its reader's language.

Configured by the environment (read at each alert, so a route added by the operator takes
effect at the next alert):

    DIARYBOT_WECOM_WEBHOOK   a WeCom (企业微信) group robot's webhook URL: every alert, markdown
    DIARYBOT_ONCALL_SMS      phone number(s) of the on-call investigator: URGENT alerts (and
                             possible-SAE reminders) by SMS; needs DIARYBOT_SMS
    DIARYBOT_ONCALL_STAFF    the on-call investigator's Telegram id (their language and name;
                             "seen" is recorded as theirs)
    DIARYBOT_SMTP_URL +      every alert by e-mail to these addresses (comma-separated)
    DIARYBOT_ALERT_EMAIL
    DIARYBOT_ALERT_LANG      the language of the group routes (WeCom, e-mail); default: the
                             study's first language, as for the Telegram staff group

`on_alert` is called where escalation sends a new copy of an alert (raised, re-sent, SAE
reminder: bot/escalation/service.deliver), in the same transaction, so re-alerting and the SAE
clock work the same here. Each route is its own outbox row on its own lane: one route failing
never holds up another. SMS carry no clinical detail (subject, level, alert number and a link).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.channels import links
from bot.channels.outbox import EMAIL, enqueue_email, enqueue_sms, enqueue_wecom, valid_phone
from bot.escalation.views import LEVELS, alert_card
from bot.i18n import N_, T, t
from bot.messenger import Priority
from bot.services.runtime import Runtime
from storage import repo
from storage.alerts import Alert

log = logging.getLogger(__name__)

ROUTED_KINDS = ("alert", "resend", "sae")


@dataclass(frozen=True)
class Target:
    route: str  # sms | wecom | email
    destination: str
    lang: str
    staff_id: int | None
    recipient: str


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


async def targets(
    rt: Runtime, conn: aiosqlite.Connection, env: Mapping[str, str] | None = None
) -> list[Target]:
    """The configured routes beyond Telegram (bad entries are logged and left out)."""
    env = os.environ if env is None else env
    group_lang = env.get("DIARYBOT_ALERT_LANG") or rt.study.languages[0]
    if group_lang not in rt.study.languages:
        group_lang = rt.study.languages[0]
    out: list[Target] = []
    wecom = (env.get("DIARYBOT_WECOM_WEBHOOK") or "").strip()
    if wecom:
        out.append(Target("wecom", wecom, group_lang, None, "WeCom"))
    if env.get("DIARYBOT_SMS"):
        staff_id: int | None = None
        name, lang = "on-call", group_lang
        raw_staff = (env.get("DIARYBOT_ONCALL_STAFF") or "").strip()
        if raw_staff.lstrip("-").isdigit():
            staff = await repo.staff_including_removed(conn, int(raw_staff))
            if staff is not None:
                staff_id, name, lang = staff.telegram_id, staff.name, staff.lang
        for phone in _split(env.get("DIARYBOT_ONCALL_SMS")):
            if valid_phone(phone):
                out.append(Target("sms", phone, lang, staff_id, name))
            else:
                log.error("DIARYBOT_ONCALL_SMS: an entry is not an E.164 number (+86…)")
    if env.get("DIARYBOT_SMTP_URL"):
        for address in _split(env.get("DIARYBOT_ALERT_EMAIL")):
            if EMAIL.match(address):
                out.append(Target("email", address, group_lang, None, address))
            else:
                log.error("DIARYBOT_ALERT_EMAIL: an entry is not an e-mail address")
    return out


def _level(_: T, alert: Alert, kind: str) -> str:
    if kind == "sae":
        return _("Possible SAE")
    return _(LEVELS.get(alert.level, ("", alert.level))[1])


def sms_text(_: T, alert: Alert, kind: str, link: str) -> str:
    return _(
        "{level} alert #{id}, subject {subject}. Open: {link}",
        level=_level(_, alert, kind),
        id=alert.id,
        subject=alert.subject,
        link=link,
    )


def email_subject(_: T, alert: Alert, kind: str) -> str:
    return _(
        "{level} alert #{id}: subject {subject}",
        level=_level(_, alert, kind),
        id=alert.id,
        subject=alert.subject,
    )


def with_link(_: T, card: str, link: str, *, markdown: bool) -> str:
    label = _("Open this alert and record that you have seen it")
    if markdown:
        return f"{card}\n\n[{label}]({link})"
    return f"{card}\n\n{label}:\n{link}"


N_("on-call")  # the recipient's name when DIARYBOT_ONCALL_STAFF is not set


async def on_alert(
    rt: Runtime,
    conn: aiosqlite.Connection,
    alert: Alert,
    kind: str,
    now: datetime,
    names: Mapping[int, str],
    *,
    added: Sequence[str] = (),
) -> int:
    """Queue this copy of the alert on every configured route; returns how many were queued.
    `added`: findings that just joined the card (the card's first line says so; an SMS is the
    same short notice as for a new alert, it carries no clinical detail)."""
    if kind not in ROUTED_KINDS:
        return 0
    urgent = alert.level == "urgent" or kind == "sae"
    priority = Priority.URGENT if urgent else Priority.REPLY
    queued = 0
    for target in await targets(rt, conn):
        if target.route == "sms" and not urgent:
            continue
        _ = t(target.lang)
        try:
            link = await links.make(
                conn,
                alert_id=alert.id,
                route=target.route,
                staff_id=target.staff_id,
                recipient=target.recipient,
                lang=target.lang,
                now=now,
            )
            ref = f"alert:{alert.id}:{target.route}"
            if target.route == "sms":
                level = _level(_, alert, kind)
                await enqueue_sms(
                    conn,
                    now,
                    target.destination,
                    sms_text(_, alert, kind, link),
                    priority,
                    template="alert",
                    params={"level": level, "id": alert.id, "subject": alert.subject, "link": link},
                    lang=target.lang,
                    ref=ref,
                )
            else:
                card, _buttons = alert_card(
                    _, rt.study, alert, kind=kind, now=now, names=names, added=added
                )
                if target.route == "wecom":
                    text = with_link(_, card, link, markdown=True)
                    await enqueue_wecom(conn, now, target.destination, text, priority, ref=ref)
                else:
                    body = with_link(_, card, link, markdown=False)
                    subject = email_subject(_, alert, kind)
                    await enqueue_email(
                        conn, now, target.destination, subject, body, priority, ref=ref
                    )
            queued += 1
        except ValueError:  # a bad destination in the configuration: the other routes go on
            log.exception("alert %s: the %s route is misconfigured", alert.id, target.route)
    return queued
