"""Shared pieces of the ops tests: the health server on a running harness, a loopback HTTP
server that records requests, Prometheus text parsing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.ops.service import Ops, start_ops
from tests.harness import Harness


@contextlib.asynccontextmanager
async def ops_for(h: Harness, heartbeat: str | None = None) -> AsyncIterator[Ops]:
    ops = await start_ops(h.bot, health="127.0.0.1:0", heartbeat=heartbeat)
    try:
        yield ops
    finally:
        await ops.stop()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


def samples(text: str) -> dict[str, float]:
    """`name{label="v"}` → value, for every sample of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


@dataclass
class Recorder:
    """A loopback HTTP server answering 200 to everything and recording each request path."""

    paths: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path_qs)
        return web.Response(text="OK")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def recorder() -> AsyncIterator[Recorder]:
    r = Recorder()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()
