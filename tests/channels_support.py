"""A loopback gateway for the non-Telegram routes: SMS webhook, Aliyun, Tencent, WeCom robot.

Each endpoint records what it received and checks it the way the real provider would (the
Aliyun and Tencent endpoints recompute the signature with the test credentials and refuse a
wrong one as the providers do). `fail[name]` makes an endpoint answer 500; `code["aliyun"]`
makes Aliyun answer that business code (e.g. isv.BUSINESS_LIMIT_CONTROL) as SendSms does.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller

from bot.channels.sms import aliyun, tencent

ALIYUN_ID, ALIYUN_SECRET = "test-key-id", "test-key-secret"
TENCENT_ID, TENCENT_KEY, TENCENT_APP = "AKIDtest", "tencent-test-key", "1400000000"


@dataclass
class Gateway:
    server: TestServer | None = None
    received: dict[str, list[Any]] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def got(self, name: str) -> list[Any]:
        return self.received.setdefault(name, [])

    def _failing(self, name: str) -> web.Response | None:
        status = self.fail.get(name)
        return web.Response(status=status, text="down") if status else None

    async def sms(self, request: web.Request) -> web.Response:
        if (bad := self._failing("sms")) is not None:
            return bad
        body = await request.json()
        assert set(body) == {"to", "text"}, body
        self.got("sms").append(body)
        return web.json_response({"id": len(self.got("sms"))})

    async def aliyun(self, request: web.Request) -> web.Response:
        if (bad := self._failing("aliyun")) is not None:
            return bad
        params = dict(request.query)
        signature = params.pop("Signature", "")
        if signature != aliyun.sign("GET", params, ALIYUN_SECRET):
            return web.json_response({"Code": "SignatureDoesNotMatch"}, status=400)
        self.got("aliyun").append(params)
        return self._sendsms_answer()

    def _sendsms_answer(self) -> web.Response:
        code = self.code.get("aliyun", "OK")
        if code != "OK":  # a business refusal: HTTP 200, the reason in Code
            return web.json_response({"Code": code, "Message": "refused", "RequestId": "r"})
        return web.json_response({"Code": "OK", "Message": "OK", "BizId": "biz-1"})

    async def aliyun_v3(self, request: web.Request) -> web.Response:
        """SendSms signed with ACS3-HMAC-SHA256, checked from the bytes received, written out
        here from Alibaba's V3 signature document rather than borrowed from the client."""
        if (bad := self._failing("aliyun")) is not None:
            return bad
        body = await request.read()
        auth = request.headers.get("Authorization", "")
        algorithm, _, fields = auth.partition(" ")
        parts = dict(f.split("=", 1) for f in fields.split(",") if "=" in f)
        signed = parts.get("SignedHeaders", "").split(";")
        required = {"host", "x-acs-action", "x-acs-version", "x-acs-date",
                    "x-acs-signature-nonce", "x-acs-content-sha256"}  # fmt: skip
        present = {h.lower() for h in request.headers
                   if h.lower().startswith("x-acs-") or h.lower() == "content-type"}  # fmt: skip

        def enc(value: str, safe: str = "") -> str:
            return quote(value, safe="-_.~" + safe)

        query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(request.query.items()))
        canonical = "\n".join([
            request.method,
            enc(request.path, "/"),
            query,
            "".join(f"{h}:{request.headers.get(h, '').strip()}\n" for h in signed),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ])  # fmt: skip
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(ALIYUN_SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if (
            algorithm != "ACS3-HMAC-SHA256"
            or parts.get("Credential") != ALIYUN_ID
            or signed != sorted(signed)
            or not _is_utc_stamp(request.headers.get("x-acs-date", ""))
            or not required | present <= set(signed)
            or request.headers["x-acs-content-sha256"] != hashlib.sha256(body).hexdigest()
            or not hmac.compare_digest(parts.get("Signature", ""), expected)
        ):
            return web.json_response({"Code": "SignatureDoesNotMatch"}, status=400)
        self.got("aliyun").append(
            {"headers": dict(request.headers), "query": dict(request.query), "body": body}
        )
        return self._sendsms_answer()

    async def tencent(self, request: web.Request) -> web.Response:
        if (bad := self._failing("tencent")) is not None:
            return bad
        raw = await request.read()
        expected = tencent.authorization(
            TENCENT_ID,
            TENCENT_KEY,
            service="sms",
            host=request.headers["Host"],
            payload=raw,
            timestamp=int(request.headers["X-TC-Timestamp"]),
            content_type=request.headers["Content-Type"],
        )
        if request.headers.get("Authorization") != expected:
            error = {"Code": "AuthFailure.SignatureFailure", "Message": "bad signature"}
            return web.json_response({"Response": {"Error": error, "RequestId": "r"}})
        self.got("tencent").append({"headers": dict(request.headers), "body": json.loads(raw)})
        status = {"Code": "Ok", "SerialNo": "s-1", "PhoneNumber": "+8613800000000"}
        return web.json_response({"Response": {"SendStatusSet": [status], "RequestId": "r"}})

    async def wecom(self, request: web.Request) -> web.Response:
        if (bad := self._failing("wecom")) is not None:
            return bad
        body = await request.json()
        assert request.query.get("key") == "robot-key"
        assert body["msgtype"] == "markdown" and body["markdown"]["content"]
        self.got("wecom").append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})


def _is_utc_stamp(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


@contextlib.asynccontextmanager
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    app = web.Application()
    app.router.add_post("/sms", gw.sms)
    app.router.add_get("/aliyun/", gw.aliyun)
    app.router.add_post("/aliyun/", gw.aliyun_v3)
    app.router.add_post("/tencent/", gw.tencent)
    app.router.add_post("/wecom", gw.wecom)
    gw.server = TestServer(app, host="127.0.0.1")
    await gw.server.start_server()
    try:
        yield gw
    finally:
        await gw.server.close()


class MailBox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode("utf-8"))
        )
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Any:
    box = MailBox()
    with socket.socket() as probe:  # a free loopback port (aiosmtpd checks it is up by connecting)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller, box
    finally:
        controller.stop()
