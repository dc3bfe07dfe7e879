"""What the benchmarks share: the evening they start in, the real bot on the loopback Bot API,
English patients linked to their chats, a coordinator with a team group, a diary with nothing
alarming in it, and a percentile. One copy, so every benchmark measures the same set-up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path

from bot.app import DiaryBot
from bot.clock import FakeClock
from bot.delivery.inbound import InboundLimits
from bot.delivery.pacing import Pacing
from bot.domain.study import load_study
from bot.localapi import LocalBotApi
from bot.services.enrolment import enroll, link_chat

T0 = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)  # 19:00 in Shanghai; Day 0 is tomorrow
INJECTION = date(2026, 12, 1)
COORDINATOR = 1002
GROUP = -100500
FIRST_USER = 100_000
# Answers that raise nothing: the diary a quiet evening is made of.
QUIET = {
    "BLEED": "0",
    "URGENCY": "1",
    "LEAK": "0",
    "PAIN": "2",
    "BM": "2",
    "TENESMUS": "0",
    "MUCUS": "0",
    "COMPL": "NONE",
    "FEVER": "N",
    "EVENTS": "NONE",
    "OTHER": "N",
}


@contextlib.asynccontextmanager
async def running_bot(
    api: LocalBotApi,
    tmp: Path,
    start: datetime = T0,
    *,
    pacing: Pacing | None = None,
    inbound: InboundLimits | None = None,
) -> AsyncIterator[DiaryBot]:
    """The real bot against `api`, its clock at `start`; pacing and inbound limits are the
    real defaults unless given."""
    bot = await DiaryBot.create(
        db_path=tmp / "bench.sqlite3",
        study=load_study(),
        clock=FakeClock(start),
        token="123456:BENCH",
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        pacing=pacing,
        inbound=inbound,
    )
    await bot.start(poll_timeout=1)
    try:
        yield bot
    finally:
        await bot.stop()


async def enrol(bot: DiaryBot, count: int, prompt: dtime, first: int, tag: str) -> list[int]:
    """English patients linked to chats `first`…, prompt at `prompt` Shanghai time."""
    users = []
    for n in range(count):
        user = first + n
        result = await enroll(bot.rt, f"{tag}-{n:04d}", INJECTION, "en", "Asia/Shanghai", prompt)
        assert (await link_chat(bot.rt, user, user, result.code)).status == "ok"
        users.append(user)
    return users


async def team(bot: DiaryBot) -> None:
    """A coordinator and a team group, as a site sets them up."""
    now = bot.rt.now().isoformat()
    async with bot.rt.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO staff (telegram_id, role, name, lang, active, created_at)"
            " VALUES (?, 'coordinator', 'Bench Coordinator', 'en', 1, ?)",
            (COORDINATOR, now),
        )
        await conn.execute("INSERT INTO meta (key, value) VALUES ('staff_group', ?)", (str(GROUP),))


async def settle(bot: DiaryBot, api: LocalBotApi, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Wait until every update sent so far is handled and the outbox is empty."""
    target = api.state._next_update_id - 1
    deadline = time.monotonic() + timeout
    while bot.app.last_update_id < target:
        if time.monotonic() > deadline:
            raise TimeoutError("updates not processed")
        await asyncio.sleep(0.002)
    await bot.sender.wait_idle(timeout=max(0.1, deadline - time.monotonic()))


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (0–100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
