"""The web diary under load: N web patients open their link and answer the diary at once.

    python -m bench.web                    # 24 and 1,000 patients, a table at the end
    python -m bench.web --patients 24      # one size
    python -m bench.web --think 0          # no pause between taps (worst case)
    python -m bench.web --patients 1000 --spread 300   # they open within 5 minutes
    python -m bench.web --json             # one JSON object

In one process: the real bot (DiaryBot against the loopback Bot-API server, fake study clock at
20:05 Shanghai when the Day -1 diary is open) and its web server on a loopback port; every
patient is a separate cookie-keeping HTTP client that passes the year-of-birth check, then at
the same moment opens the diary and answers all nine questions and Submit, pausing `--think`
seconds (± 50 %, at random) between taps: people tap about once a second, not in step. Each
HTTP request is timed: "page" is a GET (the diary screen after each redirect), "post" a form
post (the answer committed,
audited, answered with a redirect), "tap" the two together as the patient sees them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "true")

import aiohttp

from bench.common import INJECTION, QUIET, T0, pct
from bot.app import DiaryBot
from bot.clock import FakeClock
from bot.domain.study import load_study
from bot.localapi import LocalBotApi
from bot.services.enrolment import enroll
from bot.web.app import WebDiary
from bot.web.server import WebConfig

PUBLIC = "https://diary.example-hospital.cn"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
DO = re.compile(r'name="do" value="([^"]+)"')


@contextlib.asynccontextmanager
async def running(tmp: Path) -> AsyncIterator[tuple[DiaryBot, WebDiary]]:
    api = LocalBotApi()
    await api.start()
    clock = FakeClock(T0)
    bot = await DiaryBot.create(
        db_path=tmp / "web.sqlite3",
        study=load_study(),
        clock=clock,
        token="123456:BENCH",
        base_url=api.base_url,
        base_file_url=api.base_file_url,
    )
    await bot.start(poll_timeout=1)
    if os.environ.get("BENCH_SYNC_NORMAL"):  # experiment: what fsync per commit costs
        await bot.rt.db.conn.execute("PRAGMA synchronous=NORMAL")
    bot.rt.public_url = PUBLIC
    web = WebDiary(bot.rt, bot.diary, "127.0.0.1:0", WebConfig(per_ip=10**9, per_link=10**6))
    await web.start()
    try:
        yield bot, web
    finally:
        await web.stop()
        await bot.stop()
        await api.stop()


class Patient:
    def __init__(self, link: str, connector: aiohttp.TCPConnector) -> None:
        self.link = link
        self.session = aiohttp.ClientSession(
            connector=connector, connector_owner=False, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.csrf = ""
        self.page = ""

    async def get(self, timings: dict[str, list[float]]) -> None:
        t = time.perf_counter()
        async with self.session.get(self.link, allow_redirects=False) as r:
            self.page = await r.text()
            assert r.status == 200, r.status
        timings["page"].append(time.perf_counter() - t)
        m = CSRF.search(self.page)
        self.csrf = m.group(1) if m else ""

    async def post(self, path: str, data: dict[str, str], timings: dict[str, list[float]]) -> None:
        t = time.perf_counter()
        form = {**data, "csrf": self.csrf}
        async with self.session.post(self.link + path, data=form, allow_redirects=False) as r:
            await r.read()
            assert r.status == 303, r.status
        post = time.perf_counter() - t
        timings["post"].append(post)
        before = len(timings["page"])
        await self.get(timings)
        timings["tap"].append(post + timings["page"][before])

    async def verify(self) -> None:
        scratch: dict[str, list[float]] = {"page": [], "post": [], "tap": []}
        await self.get(scratch)
        await self.post("/year", {"year": "1956"}, scratch)

    async def diary(self, think: float, timings: dict[str, list[float]], spread: float) -> None:
        rng = random.Random(self.link)
        await asyncio.sleep(rng.uniform(0, spread))  # when this patient opens the link

        async def pause() -> None:  # people do not tap in step: 0.5–1.5 × think
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))

        await self.get(timings)
        for _ in range(30):
            values = [v for v in DO.findall(self.page)]
            submit = [v for v in values if v.startswith("x:")]
            if submit:
                await self.post("/act", {"do": submit[0]}, timings)
                assert "/done" in self.page or "谢谢" in self.page
                return
            first = next(v for v in values if v[:2] in ("a:", "t:"))
            _verb, occ, code = first.split(":")[:3]
            if code == "EVENTS":
                await self.post("/act", {"do": f"t:{occ}:EVENTS:NONE"}, timings)
                await pause()
                await self.post("/act", {"do": f"n:{occ}:EVENTS"}, timings)
            else:
                await self.post("/act", {"do": f"a:{occ}:{code}:{QUIET[code]}"}, timings)
            await pause()
        raise AssertionError("no review screen")


async def run(count: int, think: float, spread: float = 0.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Path(tmp)) as (bot, web):
            t = time.perf_counter()
            links = []
            for i in range(count):
                result = await enroll(
                    bot.rt,
                    f"W-{i:04d}",
                    INJECTION,
                    "zh_Hans",
                    "Asia/Shanghai",
                    bot.rt.study.default_prompt_time,
                    channel="web",
                    phone="+8613812345678",
                    birth_year=1956,
                )
                assert result.link is not None
                links.append(f"http://{web.bound}" + result.link[len(PUBLIC) :])
            enrol_s = time.perf_counter() - t
            connector = aiohttp.TCPConnector(limit=0)
            patients = [Patient(link, connector) for link in links]
            try:
                await asyncio.gather(*(p.verify() for p in patients))
                assert isinstance(bot.rt.clock, FakeClock)
                await bot.rt.clock.advance(timedelta(hours=1, minutes=5))  # 20:05: diary open
                timings: dict[str, list[float]] = {"page": [], "post": [], "tap": []}
                t, cpu = time.perf_counter(), time.process_time()
                await asyncio.gather(*(p.diary(think, timings, spread) for p in patients))
                wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            finally:
                for p in patients:
                    await p.session.close()
                await connector.close()
            done = await bot.rt.db.scalar(
                "SELECT COUNT(*) FROM occurrences WHERE status = 'completed'"
            )
    ms = {k: [v * 1000 for v in vs] for k, vs in timings.items()}
    requests = len(ms["page"]) + len(ms["post"])
    return {
        "patients": count,
        "think_s": think,
        "spread_s": spread,
        "submitted": done,
        "requests": requests,
        "wall_s": round(wall, 2),
        # server and clients share the process: an upper bound of the server's CPU per request
        "cpu_ms_per_request": round(cpu * 1000 / requests, 2),
        "load_avg_1min": round(os.getloadavg()[0], 1),
        "enrol_s": round(enrol_s, 2),
        **{
            f"{k}_{name}_ms": round(f(v), 1)
            for k, v in ms.items()
            for name, f in (
                ("p50", statistics.median),
                ("p95", lambda x: pct(x, 95)),
                ("max", max),
            )
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--patients", type=int, action="append", help="default: 24 and 1000")
    parser.add_argument("--think", type=float, default=1.0, help="seconds between taps")
    parser.add_argument(
        "--spread", type=float, default=0.0, help="patients open their link within this many s"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = args.patients or [24, 1000]
    results = [asyncio.run(run(n, args.think, args.spread)) for n in sizes]
    if args.json:
        print(json.dumps(results))
        return 0
    keys = list(results[0])
    print("| " + " | ".join(["", *[f"{r['patients']} patients" for r in results]]) + " |")
    print("| --- " * (len(results) + 1) + "|")
    for k in keys:
        print("| " + " | ".join([k, *[str(r[k]) for r in results]]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
