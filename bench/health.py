"""`/healthz` and `/metrics` latency while a 600-prompt fan-out runs (issue: server ops).

    python -m bench.health            # 600 prompts, the server enforcing 30 msg/s
    python -m bench.health --json     # one JSON object

The bot (with the health server on 127.0.0.1) runs against the loopback Bot API server with the
flood limits of bench/delivery.py's fan-out. A reader asks `/healthz` every 50 ms (and
`/metrics` every tenth time) from before the 19:01 tick that queues the 600 prompts until the
last one arrives, from the same event loop as the bot, so a request waits for whatever the bot
is doing — the tick's big transaction included. Goal: `/healthz` p95 ≤ 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import time as dtime
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "true")

import aiohttp

from bench.common import FIRST_USER, T0, enrol, pct, running_bot
from bot.clock import FakeClock
from bot.localapi import Faults, LocalBotApi
from bot.ops.service import start_ops


async def bench_health(prompts: int = 600) -> dict[str, Any]:
    api = LocalBotApi(seed=1)
    await api.start()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            async with running_bot(api, Path(tmp)) as bot:
                await enrol(bot, prompts, dtime(19, 1), FIRST_USER, "HB")
                ops = await start_ops(bot, health="127.0.0.1:0")
                assert ops.server is not None
                base = ops.server.url
                api.faults = Faults(
                    rate_limit_per_second=30, per_chat_per_second=1, group_per_minute=20
                )
                clock = bot.rt.clock
                assert isinstance(clock, FakeClock)
                before = len(api.state.sent_order)
                health_ms: list[float] = []
                metrics_ms: list[float] = []
                statuses: dict[int, int] = {}
                done = asyncio.Event()

                async def reader(session: aiohttp.ClientSession) -> None:
                    n = 0
                    while not done.is_set():
                        t = time.perf_counter()
                        async with session.get(base + "/healthz") as r:
                            await r.read()
                            statuses[r.status] = statuses.get(r.status, 0) + 1
                        health_ms.append((time.perf_counter() - t) * 1000)
                        n += 1
                        if n % 10 == 0:
                            t = time.perf_counter()
                            async with session.get(base + "/metrics") as r:
                                await r.read()
                            metrics_ms.append((time.perf_counter() - t) * 1000)
                        await asyncio.sleep(0.05)

                async with aiohttp.ClientSession() as session:
                    task = asyncio.create_task(reader(session))
                    await asyncio.sleep(0.2)
                    t0 = time.perf_counter()
                    await clock.set(T0 + timedelta(minutes=1))  # 19:01: the tick queues the prompts
                    await api.wait_until(
                        lambda: len(api.state.sent_order) - before >= prompts, timeout=300
                    )
                    fanout_s = time.perf_counter() - t0
                    done.set()
                    await task
                await ops.stop()
        finally:
            await api.stop()
    return {
        "prompts": prompts,
        "fanout_s": round(fanout_s, 1),
        "healthz_requests": len(health_ms),
        "healthz_status": {str(k): v for k, v in sorted(statuses.items())},
        "healthz_p50_ms": round(statistics.median(health_ms), 2),
        "healthz_p95_ms": round(pct(health_ms, 95), 2),
        "healthz_max_ms": round(max(health_ms), 2),
        "metrics_requests": len(metrics_ms),
        "metrics_p50_ms": round(statistics.median(metrics_ms), 2) if metrics_ms else None,
        "metrics_p95_ms": round(pct(metrics_ms, 95), 2) if metrics_ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(bench_health(args.prompts))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
        verdict = "met" if result["healthz_p95_ms"] <= 20 else "NOT met"
        print(f"goal: /healthz p95 <= 20 ms -> {verdict}")


if __name__ == "__main__":
    main()
