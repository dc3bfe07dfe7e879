"""Shared set-up for the delivery tests: a harness with a chosen server and pacing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

from bot import messenger
from bot.app import DiaryBot
from bot.clock import iso
from bot.delivery.inbound import NO_LIMITS
from bot.domain.study import Study
from bot.localapi import LocalBotApi
from bot.messenger import Priority
from bot.sender import Pacing
from bot.services.enrolment import enroll, link_chat
from tests.conftest import T0
from tests.harness import Harness, running_harness

# 20:00 in Shanghai on 2026-12-01 (Day 0 for injection 2026-12-01): the prompt is due.
DAY0_PROMPT = datetime(2026, 12, 1, 12, 0, 5, tzinfo=T0.tzinfo)


@contextlib.asynccontextmanager
async def delivery_harness(
    tmp_path: Path,
    study: Study,
    *,
    api: LocalBotApi | None = None,
    pacing: Pacing | None = None,
    start: datetime = T0,
    read_timeout: float = 15,
) -> AsyncIterator[Harness]:
    async with running_harness(
        tmp_path,
        study,
        start=start,
        api=api or LocalBotApi(seed=5),
        pacing=pacing,
        read_timeout=read_timeout,
    ) as h:
        yield h


async def restart(h: Harness, pacing: Pacing | None = None) -> None:
    """Stop the bot and start a new one on the same database (a restart, not a crash)."""
    await h.bot.stop()
    h.bot = await DiaryBot.create(
        db_path=h.db_path,
        study=h.study,
        clock=h.clock,
        token="123456:TEST-TOKEN",
        base_url=h.api.base_url,
        base_file_url=h.api.base_file_url,
        pacing=pacing,
        inbound=NO_LIMITS,
    )
    await h.bot.start(poll_timeout=1)


async def enrol_linked(h: Harness, count: int, *, first_user: int = 20000) -> list[int]:
    """`count` English patients, Day 0 on 2026-12-01, linked without chatting (no messages)."""
    users = []
    for n in range(count):
        user = first_user + n
        result = await enroll(
            h.rt, f"DL-{n:04d}", date(2026, 12, 1), "en", "Asia/Shanghai", dtime(20, 0)
        )
        linked = await link_chat(h.rt, user, user, result.code)
        assert linked.status == "ok"
        users.append(user)
    return users


async def queue(
    h: Harness,
    chat_id: int,
    text: str,
    priority: Priority = Priority.PROMPT,
    *,
    ref: str | None = None,
) -> int:
    async with h.rt.db.transaction() as conn:
        row_id = await messenger.enqueue(
            conn, h.rt.now(), chat_id, text, priority=priority, ref=ref
        )
    h.rt.wake_sender()
    return row_id


async def parked(h: Harness) -> int:
    return int(
        await h.rt.db.scalar(
            "SELECT COUNT(*) FROM outbox WHERE status = 'queued' AND not_before > ?",
            (iso(h.rt.now()),),
        )
    )


async def drain(h: Harness, *, rounds: int = 10, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Deliver everything, moving the clock past parked rows (repeated failures) as needed."""
    for _ in range(rounds):
        await h.settle(timeout=timeout)
        if not await parked(h):
            return
        await h.advance(minutes=3)
    raise AssertionError("messages still parked after many retries")


async def outbox(h: Harness, sql_where: str = "1", params: tuple[Any, ...] = ()) -> list[Any]:
    return await h.rows(f"SELECT * FROM outbox WHERE {sql_where} ORDER BY id", params)
