"""Benchmark: 10,000 enrolled subjects across time zones.

Measures what the 24-month schedule costs at study scale (not a test; no assertions):
- building the database (10,000 subjects, each with their diary occurrences materialized);
- time to start the bot (DiaryBot.create + start against the loopback Bot API server, with the
  first catch-up tick), the first time (the follow-up plans every subject's visit reminders and
  closing message) and again (steady state);
- time to find the due occurrences: the scheduler's `next_change` and a tick with nothing due;
- one busy tick: 20:00 in Shanghai, when every subject there with a 20:00 diary due is prompted;
- peak RSS of the process that ran the bot, and the database size.

Usage (from the repository root, with the project's virtualenv):

    python bench/schedule_10k.py                 # build + measure, prints a summary table
    python bench/schedule_10k.py --subjects 2000 # smaller
    python bench/schedule_10k.py --keep DB       # keep the database at DB (rebuilt if absent)

Build and measurement run in separate processes so the peak RSS is the bot's, not the builder's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import DiaryBot
from bot.clock import FakeClock, iso
from bot.domain.study import load_study, parse_hhmm
from bot.localapi import LocalBotApi
from bot.services.enrolment import enroll, materialize
from bot.services.runtime import Runtime
from storage import repo
from storage.db import Database

ZONES = (
    "Asia/Shanghai",
    "Asia/Shanghai",  # most subjects are at the site
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Singapore",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
)
PROMPTS = ("19:00", "20:00", "20:00", "21:00", "08:00")
# 19:00 in Shanghai: the build happens here; the bot starts half an hour later.
BUILD_AT = datetime(2027, 6, 1, 11, 0, tzinfo=UTC)
START_AT = BUILD_AT + timedelta(minutes=30)
BUSY_AT = BUILD_AT + timedelta(hours=1)  # 20:00 in Shanghai
BATCH = 500


async def build(path: Path, subjects: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    study = load_study()
    db = await Database.open(path)
    rt = Runtime(db=db, study=study, clock=FakeClock(BUILD_AT))
    started = time.perf_counter()
    today = BUILD_AT.date()
    for first in range(0, subjects, BATCH):
        async with db.transaction() as conn:
            for i in range(first, min(first + BATCH, subjects)):
                subject = f"RP-{i:05d}"
                # Spread over the whole follow-up: some in baseline, most daily or weekly.
                injection = today + timedelta(days=rng.randint(-700, 7))
                tz = rng.choice(ZONES)
                prompt = parse_hhmm(rng.choice(PROMPTS))
                lang = rng.choice(("zh_Hans", "en"))
                await enroll(rt, subject, injection, lang, tz, prompt, actor="bench", conn=conn)
                chat = 10_000_000 + i
                await conn.execute(
                    "UPDATE patients SET chat_id = ?, user_id = ?, status = 'active'"
                    " WHERE subject = ?",
                    (chat, chat, subject),
                )
                patient = await repo.patient_by_subject(conn, subject)
                assert patient is not None
                await materialize(rt, conn, patient, BUILD_AT)
    elapsed = time.perf_counter() - started
    occurrences = await db.scalar("SELECT COUNT(*) FROM occurrences")
    await db.close()
    return {"subjects": subjects, "occurrences": occurrences, "build_s": round(elapsed, 1)}


async def _started(path: Path, api: LocalBotApi, at: datetime) -> tuple[DiaryBot, float]:
    t0 = time.perf_counter()
    bot = await DiaryBot.create(
        db_path=path,
        study=load_study(),
        clock=FakeClock(at),
        token="123456:BENCH",
        base_url=api.base_url,
        base_file_url=api.base_file_url,
    )
    await bot.start(poll_timeout=1)
    return bot, time.perf_counter() - t0


async def _avg(fn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - t0) / n


async def measure(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    api = LocalBotApi()
    await api.start()
    try:
        bot, first = await _started(path, api, START_AT)
        out["followup_events"] = await bot.rt.db.scalar("SELECT COUNT(*) FROM followup_events")
        out["start_first_prompts"] = await bot.rt.db.scalar(
            "SELECT COUNT(*) FROM outbox WHERE ref LIKE 'prompted:%'"
        )
        await bot.stop()
        bot, second = await _started(path, api, START_AT + timedelta(minutes=1))
        await bot.stop()
    finally:
        await api.stop()
    out["start_first_s"] = round(first, 2)
    out["start_again_s"] = round(second, 2)

    # Ticks without Telegram (no delivery competing for the CPU).
    bot = await DiaryBot.create(
        db_path=path,
        study=load_study(),
        clock=FakeClock(START_AT + timedelta(minutes=2)),
        token="123456:BENCH",
        base_url="http://127.0.0.1:9/bot",
    )
    try:
        sched = bot.scheduler
        now = bot.rt.now()
        await sched.tick()
        out["next_change_ms"] = round(1000 * await _avg(lambda: sched.next_change(now), 20), 2)
        out["idle_tick_ms"] = round(1000 * await _avg(sched.tick, 20), 2)
        # The scheduler's own question at the busy instant, read-only: which prompts are due?
        # Same SQL as DiaryScheduler._notify; keep the ORDER BY: with it SQLite picks the
        # (status, opens_at) index, without it the (status, closes_at) one, 10,000 times slower.
        busy = iso(BUSY_AT)
        due_sql = (
            "SELECT o.*, p.id AS pid FROM occurrences o JOIN patients p ON p.id = o.patient_id"
            " WHERE o.status = ? AND o.opens_at <= ? AND o.closes_at > ?"
            " AND (o.prompted_at IS NULL OR o.prompted_at < o.remind_at)"
            " AND p.status = 'active' AND p.chat_id IS NOT NULL AND p.unreachable = 0"
            " ORDER BY o.opens_at"
        )
        t0 = time.perf_counter()
        due = await bot.rt.db.fetchall(due_sql, ("scheduled", busy, busy))
        out["find_due_ms"] = round(1000 * (time.perf_counter() - t0), 2)
        out["found_due"] = len(due)
        before = await bot.rt.db.scalar("SELECT COUNT(*) FROM outbox WHERE ref LIKE 'prompted:%'")
        clock = bot.rt.clock
        assert isinstance(clock, FakeClock)
        t0 = time.perf_counter()
        await clock.set(BUSY_AT)
        out["busy_tick_s"] = round(time.perf_counter() - t0, 2)
        after = await bot.rt.db.scalar("SELECT COUNT(*) FROM outbox WHERE ref LIKE 'prompted:%'")
        out["busy_tick_prompts"] = after - before
    finally:
        await bot.stop()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["db_mb"] = round(sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20)
    return out


def _child(mode: str, db: Path, subjects: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, mode, str(db), "--subjects", str(subjects)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bot").setLevel(logging.ERROR)  # "no recipient" etc. are expected here
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", nargs="?", default="all", choices=("all", "build", "measure"))
    p.add_argument("db", nargs="?")
    p.add_argument("--subjects", type=int, default=10_000)
    p.add_argument("--keep", metavar="DB", help="database path to keep (built if missing)")
    args = p.parse_args()
    if args.mode == "build":
        print(json.dumps(asyncio.run(build(Path(args.db), args.subjects))))
        return 0
    if args.mode == "measure":
        print(json.dumps(asyncio.run(measure(Path(args.db)))))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.keep) if args.keep else Path(tmp) / "bench.sqlite3"
        result: dict[str, Any] = {}
        if not db.exists():
            result.update(_child("build", db, args.subjects))
        result.update(_child("measure", db, args.subjects))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
