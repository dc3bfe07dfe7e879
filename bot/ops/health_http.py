"""`GET /healthz` and `GET /metrics`: a small aiohttp app of its own, for monitoring.

`diarybot run --health 127.0.0.1:9102` (or `DIARYBOT_HEALTH=127.0.0.1:9102`). Bind it to the
loopback address (or a monitoring network): it shows no patient data, but it is not meant for
the Internet. It is separate from any patient-facing web server.

- `/healthz`: 200 or 503 with a small JSON (`bot.ops.monitor.Health.as_dict`); Docker's
  HEALTHCHECK, systemd's watchdog timer and load balancers read the status code.
- `/metrics`: Prometheus text format (prometheus-client): the outbox by priority (due and
  parked), sent and failed, open alerts by level, the last successful getUpdates and tick as
  timestamps, whether the bot is healthy, and the process's own metrics (start time, memory).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bot.delivery.status import PRIORITY_NAMES, Snapshot
from bot.ops.monitor import Health, OpsMonitor

if TYPE_CHECKING:
    from collections.abc import Mapping


def parse_address(text: str) -> tuple[str, int]:
    """`127.0.0.1:9102`, `[::1]:9102`, `localhost:9102` → (host, port); ValueError otherwise."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bad address {text!r}, expected HOST:PORT such as 127.0.0.1:9102")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"bad address {text!r}: HOST must be an IP address") from None
    return host, int(port_text)


class _Collector(Collector):
    """The bot's metrics from one health reading and one outbox snapshot."""

    def __init__(self, health: Health, snap: Snapshot, stats: Mapping[str, int], start: float):
        self.health = health
        self.snap = snap
        self.stats = stats
        self.start = start

    def collect(self) -> Iterator[Metric]:
        s, h = self.snap, self.health
        queued = GaugeMetricFamily(
            "diarybot_outbox_queued", "Messages queued and due now", labels=["priority"]
        )
        parked = GaugeMetricFamily(
            "diarybot_outbox_parked",
            "Messages queued for a later retry after failures",
            labels=["priority"],
        )
        for name in PRIORITY_NAMES.values():
            queued.add_metric([name], s.queued.get(name, 0))
            parked.add_metric([name], s.parked_by.get(name, 0))
        yield queued
        yield parked
        yield GaugeMetricFamily(
            "diarybot_outbox_sent_last_hour",
            "Messages sent in the last hour",
            value=s.sent_last_hour,
        )
        yield GaugeMetricFamily(
            "diarybot_outbox_failed_last_24h",
            "Messages given up on in the last 24 hours",
            value=s.failed_24h,
        )
        sent = CounterMetricFamily(
            "diarybot_sender_events", "Sender outcomes since the process started", labels=["event"]
        )
        for key, value in sorted(self.stats.items()):
            if key != "latency_ms":
                sent.add_metric([key], value)
        yield sent
        alerts = GaugeMetricFamily("diarybot_open_alerts", "Open alerts", labels=["level"])
        for level in ("urgent", "review", "compliance"):
            alerts.add_metric([level], (s.open_alerts or {}).get(level, 0))
        yield alerts
        yield GaugeMetricFamily(
            "diarybot_unreachable_patients",
            "Patients who blocked the bot",
            value=len(s.unreachable),
        )
        yield GaugeMetricFamily(
            "diarybot_oldest_urgent_queued_seconds",
            "Age of the oldest queued urgent message (0: none)",
            value=h.oldest_urgent_seconds or 0.0,
        )
        yield GaugeMetricFamily(
            "diarybot_last_getupdates_timestamp_seconds",
            "When getUpdates last succeeded (Unix time; 0: not yet)",
            value=h.last_poll_ok.timestamp() if h.last_poll_ok else 0.0,
        )
        yield GaugeMetricFamily(
            "diarybot_last_tick_timestamp_seconds",
            "When the scheduler last ran (Unix time; 0: not yet)",
            value=h.last_tick.timestamp() if h.last_tick else 0.0,
        )
        yield GaugeMetricFamily(
            "diarybot_start_time_seconds", "When the bot started (Unix time)", value=self.start
        )
        yield GaugeMetricFamily(
            "diarybot_healthy", "1 when /healthz answers 200", value=1.0 if h.ok else 0.0
        )


class HealthServer:
    def __init__(self, monitor: OpsMonitor, host: str, port: int) -> None:
        self.monitor = monitor
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        self.app = app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def healthz(self, request: web.Request) -> web.Response:
        health = await self.monitor.health()
        return web.Response(
            text=json.dumps(health.as_dict(), sort_keys=True),
            status=200 if health.ok else 503,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def metrics(self, request: web.Request) -> web.Response:
        health = await self.monitor.health()
        snap = await self.monitor.snapshot()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(
            _Collector(
                health,
                snap,
                dict(self.monitor.bot.sender.stats),
                self.monitor.started.timestamp(),
            )
        )
        ProcessCollector(registry=registry)
        body = generate_latest(registry)
        return web.Response(
            body=body,
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )
