"""Queue a message on a non-Telegram channel: the public helpers other code uses.

Like `bot.messenger.enqueue`, call inside the transaction that decided to send, then
`rt.wake_sender()` after commit (it wakes the channel dispatcher too). The row is durable from
then on: the dispatcher (bot/channels/dispatcher.py) marks it sent only once the provider has
accepted it, retries with backoff, and sends urgent rows first.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import aiosqlite

from bot.domain.sms_templates import PURPOSES
from bot.messenger import Priority
from storage import channels as store

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def valid_phone(phone: str) -> bool:
    return bool(E164.match(phone))


# SMS whose text is a secret: the patient's personal link.
SECRET_PURPOSES = frozenset({"web_link"})


async def enqueue_sms(
    conn: aiosqlite.Connection,
    now: datetime,
    phone: str,
    text: str,
    priority: Priority = Priority.PROMPT,
    *,
    template: str | None = None,
    params: dict[str, Any] | None = None,
    lang: str = "zh_Hans",
    ref: str | None = None,
) -> int:
    """An SMS to `phone` (E.164). `text` is what free-text gateways send; `template` (a key of
    bot.domain.sms_templates.PURPOSES) and `params` are what Aliyun / Tencent send."""
    if not valid_phone(phone):
        raise ValueError("not an E.164 phone number (+ country code and number)")
    if template is not None and template not in PURPOSES:
        raise ValueError(f"unknown SMS template {template!r}")
    payload: dict[str, Any] = {
        "text": text,
        "purpose": template,
        "lang": lang,
        "params": {k: str(v) for k, v in (params or {}).items()},
    }
    if template in SECRET_PURPOSES:
        payload["secret"] = True  # stripped once sent or given up (storage.channels.finish)
    return await store.insert(conn, now, "sms", phone, payload, int(priority), ref)


async def enqueue_wecom(
    conn: aiosqlite.Connection,
    now: datetime,
    webhook: str,
    markdown: str,
    priority: Priority = Priority.REPLY,
    *,
    ref: str | None = None,
) -> int:
    """A markdown message to a WeCom (企业微信) group robot's webhook URL."""
    if not webhook.startswith(("http://", "https://")):
        raise ValueError("a WeCom webhook is an http(s) URL")
    return await store.insert(conn, now, "wecom", webhook, {"markdown": markdown}, priority, ref)


async def enqueue_email(
    conn: aiosqlite.Connection,
    now: datetime,
    to: str,
    subject: str,
    body: str,
    priority: Priority = Priority.REPLY,
    *,
    ref: str | None = None,
) -> int:
    """A plain-text e-mail (sent through DIARYBOT_SMTP_URL)."""
    if not EMAIL.match(to):
        raise ValueError("not an e-mail address")
    payload = {"subject": subject, "body": body}
    return await store.insert(conn, now, "email", to, payload, int(priority), ref)
