"""One-time signed links to an alert, for routes without buttons (SMS, WeCom, e-mail).

Token = base64url(JSON {n: nonce, a: alert id, x: expiry}) "." base64url(HMAC-SHA256). The
server secret is `DIARYBOT_LINK_SECRET`, or one made once and kept in the database's meta table.
The nonce (128 bits) names a row of `alert_links` (who it was sent to, in which language);
the first opening by a signed-in console member uses the row up (bot/console/pages_ack.py), so a
second use is refused as a replay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosqlite

from storage import channels as store
from storage import repo

LINK_HOURS = 72
PATH = "/ack/"


def public_url() -> str:
    return (os.environ.get("DIARYBOT_PUBLIC_URL") or "http://127.0.0.1:8090").rstrip("/")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def secret(conn: aiosqlite.Connection) -> bytes:
    env = os.environ.get("DIARYBOT_LINK_SECRET")
    if env:
        return env.encode()
    value = await repo.meta_get(conn, "alert_link_secret")
    if not value:
        value = secrets.token_hex(32)
        await repo.meta_set(conn, "alert_link_secret", value)
    return value.encode()


def sign(key: bytes, payload: dict[str, object]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


@dataclass(frozen=True)
class Claim:
    nonce: str
    alert_id: int
    expires: int


def verify(key: bytes, token: str) -> Claim | None:
    """The claim of a token signed with `key`, or None if it is malformed or forged."""
    body, dot, mac = token.partition(".")
    if not dot or len(token) > 400:
        return None
    try:
        expected = hmac.new(key, body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        data = json.loads(_unb64(body))
        return Claim(str(data["n"]), int(data["a"]), int(data["x"]))
    except (ValueError, KeyError, TypeError):
        return None


async def make(
    conn: aiosqlite.Connection,
    *,
    alert_id: int,
    route: str,
    staff_id: int | None,
    recipient: str,
    lang: str,
    now: datetime,
) -> str:
    """A new one-time link for one recipient of one alert (call inside the transaction)."""
    nonce = secrets.token_urlsafe(16)
    expires = now + timedelta(hours=LINK_HOURS)
    await store.add_link(
        conn,
        nonce=nonce,
        alert_id=alert_id,
        route=route,
        staff_id=staff_id,
        recipient=recipient,
        lang=lang,
        now=now,
        expires_at=expires,
    )
    token = sign(await secret(conn), {"n": nonce, "a": alert_id, "x": int(expires.timestamp())})
    return f"{public_url()}{PATH}{token}"
