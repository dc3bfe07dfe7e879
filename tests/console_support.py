"""Driving the web console over real HTTP (aiohttp's test server and client, cookies kept)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pyotp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.channels import ack_web
from bot.console import accounts
from bot.console.app import build
from bot.console.keys import SecretBox
from tests.harness import Harness

PASSWORD = "Lantern orbit cactus 1956!"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_KEY = b"0000000000000000000000000000000000000000000="  # a fixed Fernet key for tests
SECRET = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')


@contextlib.asynccontextmanager
async def console_client(h: Harness) -> AsyncIterator[TestClient[Any, Any]]:
    root = web.Application()
    ack_web.add_routes(root)  # PUBLIC_URL/ack/<token>, the alert links, lead into the console
    root.add_subapp("/console/", build(h.rt, box=SecretBox(_KEY)))
    async with TestClient(TestServer(root)) as client:
        yield client


async def invite(
    h: Harness,
    email: str,
    role: str,
    *,
    telegram_id: int | None = None,
    name: str = "Zhou Min",
    lang: str = "en",
) -> str:
    async with h.rt.db.transaction() as conn:
        inv = await accounts.create_account(
            h.rt,
            conn,
            email=email,
            name=name,
            role=role,
            lang=lang,
            telegram_id=telegram_id,
            by="cli",
        )
    return inv.token


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF token on the page"
    return m.group(1)


async def form_csrf(client: TestClient[Any, Any], path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, (path, resp.status)
    return csrf_of(await resp.text())


def code_at(h: Harness, secret: str, *, later: int = 0) -> str:
    return pyotp.TOTP(secret).at(h.clock.now() + timedelta(seconds=later))


async def accept_invite(h: Harness, client: TestClient[Any, Any], token: str) -> str:
    """Set the password and TOTP through the pages; returns the TOTP secret."""
    path = f"/console/invite/{token}"
    csrf = await form_csrf(client, path)
    resp = await client.post(path, data={"csrf": csrf, "password": PASSWORD, "password2": PASSWORD})
    html = await resp.text()
    assert resp.status == 200, html
    m = SECRET.search(html)
    assert m, html
    secret = m.group(1).replace(" ", "")
    resp = await client.post(
        f"{path}/totp", data={"csrf": csrf_of(html), "code": code_at(h, secret)}
    )
    assert resp.status == 200, await resp.text()
    await h.clock.advance(timedelta(seconds=31))  # the set-up code may not be used again
    return secret


async def sign_in(
    h: Harness, client: TestClient[Any, Any], email: str, secret: str, password: str = PASSWORD
) -> int:
    csrf = await form_csrf(client, "/console/login")
    resp = await client.post(
        "/console/login",
        data={"csrf": csrf, "email": email, "password": password, "code": code_at(h, secret)},
        allow_redirects=False,
    )
    return resp.status


async def member(h: Harness, client: TestClient[Any, Any], email: str, role: str, **kw: Any) -> str:
    """Invited, set up and signed in; returns the TOTP secret."""
    secret = await accept_invite(h, client, await invite(h, email, role, **kw))
    assert await sign_in(h, client, email, secret) == 303
    return secret
