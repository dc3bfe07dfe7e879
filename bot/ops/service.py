"""Wires logs, health, metrics and the heartbeat into `diarybot run` (nothing here for tests'
harness or the sandbox unless they ask: `start_ops(bot, ...)`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.ops.health_http import HealthServer, parse_address
from bot.ops.heartbeat import Heartbeat
from bot.ops.monitor import OpsMonitor

if TYPE_CHECKING:
    from bot.app import DiaryBot

log = logging.getLogger(__name__)


@dataclass
class Ops:
    monitor: OpsMonitor
    server: HealthServer | None = None
    heartbeat: Heartbeat | None = None
    _stopped: bool = field(default=False, repr=False)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        if self.server is not None:
            await self.server.stop()
        await self.monitor.close()


def health_address() -> str | None:
    return os.environ.get("DIARYBOT_HEALTH") or None


def heartbeat_url() -> str | None:
    return os.environ.get("DIARYBOT_HEARTBEAT_URL") or None


async def start_ops(
    bot: DiaryBot, *, health: str | None = None, heartbeat: str | None = None
) -> Ops:
    """Call between `DiaryBot.create` and `DiaryBot.start`. `health`: HOST:PORT to serve
    /healthz and /metrics on (ValueError when malformed); `heartbeat`: a URL to GET."""
    address = parse_address(health) if health else None
    monitor = OpsMonitor(bot)
    monitor.attach()
    await monitor.open()
    ops = Ops(monitor)
    try:
        if heartbeat:
            ops.heartbeat = Heartbeat(heartbeat, monitor)
            ops.heartbeat.attach()
        if address is not None:
            ops.server = HealthServer(monitor, *address)
            await ops.server.start()
            log.info("health and metrics on %s/healthz and /metrics", ops.server.url)
    except BaseException:
        await ops.stop()
        raise
    return ops
