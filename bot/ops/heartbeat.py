"""A heartbeat for an outside monitor: GET `DIARYBOT_HEARTBEAT_URL` every minute while healthy.

healthchecks.io, Uptime Kuma's "push" monitors and similar services expect a request every few
minutes and tell the team when it stops coming: when the bot dies, the machine dies or the
bot is up but unhealthy (`bot.ops.monitor`), the beats stop and the outside service raises the
alarm. Driven by the scheduler's tick (its wake hook asks for one a minute), so it follows the
injected clock. The request runs in its own task: a slow monitor never delays the tick.
The URL is never logged (such URLs carry a secret id).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import aiohttp

from bot.ops.monitor import OpsMonitor

log = logging.getLogger(__name__)

EVERY = timedelta(minutes=1)
TIMEOUT = aiohttp.ClientTimeout(total=10)


class Heartbeat:
    def __init__(self, url: str, monitor: OpsMonitor, every: timedelta = EVERY) -> None:
        self.url = url
        self.monitor = monitor
        self.every = every
        self.last: datetime | None = None
        self.sent = 0
        self.failed = 0
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def attach(self) -> None:
        self.monitor.bot.scheduler.hooks.append(self.on_tick)
        self.monitor.bot.scheduler.wake_hooks.append(self.next_wake)

    async def on_tick(self, now: datetime) -> None:
        if self.last is not None and now - self.last < self.every:
            return
        if self._task is not None and not self._task.done():
            return  # the previous beat is still on its way
        health = await self.monitor.health()
        if not health.ok:
            log.warning("heartbeat withheld: %s", "; ".join(health.problems))
            return
        self.last = now
        self._task = asyncio.create_task(self._beat(), name="heartbeat")

    async def next_wake(self, now: datetime) -> datetime:
        return (self.last or now) + self.every

    async def _beat(self) -> None:
        if self._session is None:
            # trust_env: HTTPS_PROXY / NO_PROXY from the environment, as hospital networks need
            self._session = aiohttp.ClientSession(timeout=TIMEOUT, trust_env=True)
        try:
            async with self._session.get(self.url) as response:
                await response.read()
                if response.status >= 400:
                    self.failed += 1
                    log.warning("heartbeat refused: HTTP %s", response.status)
                    return
            self.sent += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.failed += 1
            log.warning("heartbeat failed: %s", type(exc).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
