"""TELEGRAM_PROXY: every Bot API call goes through the configured proxy."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.app import DiaryBot
from bot.clock import FakeClock
from bot.config import load_settings
from bot.domain.study import Study
from bot.localapi import LocalBotApi
from tests.conftest import T0


class ForwardProxy:
    """A plain HTTP forward proxy on loopback: records each request line, passes it on."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _forward(self, request: web.Request) -> web.Response:
        target = str(request.url)  # absolute-form request target: http://host:port/path
        self.seen.append(target)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self._session.request(
            request.method, target, headers=headers, data=await request.read()
        ) as upstream:
            body = await upstream.read()
            return web.Response(
                body=body, status=upstream.status, content_type=upstream.content_type
            )

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


async def test_bot_api_traffic_goes_through_the_proxy(tmp_path: Path, study: Study) -> None:
    api = LocalBotApi()
    await api.start()
    proxy = ForwardProxy()
    await proxy.start()
    bot = await DiaryBot.create(
        db_path=tmp_path / "p.sqlite3",
        study=study,
        clock=FakeClock(T0),
        token="123456:TEST-TOKEN",
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        proxy=proxy.url,
    )
    try:
        await bot.start(poll_timeout=1)
        api.send_text(601, "/help", language_code="en")
        await api.wait_for_message(601)
        methods = {url.rsplit("/", 1)[-1] for url in proxy.seen}
        assert {"getMe", "getUpdates", "sendMessage"} <= methods
        assert all(url.startswith(api.base_url) for url in proxy.seen)
    finally:
        await bot.stop()
        await proxy.stop()
        await api.stop()


async def test_socks5_proxy_reaches_the_request_objects(
    tmp_path: Path, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_PROXY", "socks5://user:pw@127.0.0.1:1080")
    settings = load_settings()
    assert settings.proxy == "socks5://user:pw@127.0.0.1:1080"
    assert "pw" not in repr(settings)
    bot = await DiaryBot.create(
        db_path=tmp_path / "s.sqlite3",
        study=study,
        clock=FakeClock(T0),
        token="123456:TEST-TOKEN",
        proxy=settings.proxy,
    )
    try:
        # PTB keeps two request objects: one for getUpdates, one for everything else
        for request in (bot.app.bot._request[0], bot.app.bot._request[1]):
            assert request._client_kwargs["proxy"] == settings.proxy
    finally:
        await bot.app.shutdown()
        await bot.rt.db.close()
