"""SMS fan-out under the provider's rate limit, urgent first (issue: web diary / SMS).

    python -m bench.sms_fanout                       # 400 prompts at 20 SMS/s, 3 urgent
    python -m bench.sms_fanout --prompts 1000 --rate 50
    python -m bench.sms_fanout --json

The real dispatcher lane (bot/channels/dispatcher.py) with the `webhook` provider sends to a
loopback gateway that enforces the rate like a provider's per-second limit: more than `rate`
requests in any one-second window are answered 429 (counted; the dispatcher retries them).
A third of the way in, three URGENT SMS are queued (an on-call alert): how long each takes to
reach the gateway, against what a first-in-first-out queue would make it wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.dispatcher import ChannelDispatcher
from bot.channels.outbox import enqueue_sms
from bot.channels.sms.route import SmsRoute
from bot.channels.sms.webhook import WebhookSms
from bot.clock import FakeClock
from bot.messenger import Priority
from storage.db import Database

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class RateLimitedGateway:
    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.window: deque[float] = deque()
        self.accepted: list[tuple[float, str]] = []
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()
        while self.window and now - self.window[0] >= 1.0:
            self.window.popleft()
        if len(self.window) >= self.rate:
            self.refused += 1
            return web.Response(status=429, text="rate limited")
        self.window.append(now)
        self.accepted.append((now, body["text"]))
        return web.json_response({"id": len(self.accepted)})


def busiest_second(times: list[float]) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


async def run(prompts: int, rate: int) -> dict[str, Any]:
    gw = RateLimitedGateway(rate)
    app = web.Application()
    app.router.add_post("/sms", gw.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(Path(tmp) / "sms.sqlite3")
        route = SmsRoute(WebhookSms(str(server.make_url("/sms"))), rate=rate, burst=1)
        dispatcher = ChannelDispatcher(db, FakeClock(T0), [route])
        async with db.transaction() as conn:
            for i in range(prompts):
                await enqueue_sms(conn, T0, f"+86138{i:08d}", f"prompt {i}", Priority.PROMPT)
        start = time.monotonic()
        dispatcher.start()
        lane = dispatcher.lanes["sms"]
        while True:  # a third of the way in
            if lane.stats["sent"] >= prompts // 3:
                break
            await asyncio.sleep(0.01)
        urgent_at = time.monotonic()
        waiting = prompts - lane.stats["sent"]
        async with db.transaction() as conn:
            for i in range(3):
                await enqueue_sms(conn, T0, f"+86139{i:08d}", f"URGENT {i}", Priority.URGENT)
        dispatcher.wake()
        await dispatcher.wait_idle(timeout=prompts / rate * 3 + 30)
        end = time.monotonic()
        await dispatcher.stop()
        await db.close()
    await server.close()
    times = [t for t, _ in gw.accepted]
    arrivals = {text: t for t, text in gw.accepted}
    urgent_s = [arrivals[f"URGENT {i}"] - urgent_at for i in range(3)]
    prompt_times = [t for t, text in gw.accepted if text.startswith("prompt")]
    return {
        "prompts": prompts,
        "rate_limit_per_s": rate,
        "sent_rate_per_s": round((len(times) - 1) / (times[-1] - times[0]), 2),
        "rate_ratio": round((len(times) - 1) / (times[-1] - times[0]) / rate, 3),
        "busiest_second": busiest_second(times),
        "gateway_429": gw.refused,
        "total_s": round(end - start, 2),
        "urgent_to_gateway_ms": [round(s * 1000, 1) for s in urgent_s],
        "urgent_fifo_estimate_s": round(waiting / rate, 1),
        "prompts_after_urgent": sum(
            1 for t in prompt_times if t > max(arrivals[f"URGENT {i}"] for i in range(3))
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.prompts, args.rate))
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
