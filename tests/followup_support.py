"""Helpers for the follow-up tests: a bot that is built but not connected to Telegram.

The scheduler-level tests drive `DiaryScheduler.tick()` through the fake clock and read what it
decided from the outbox and the audit trail; nothing is delivered, so months of prompts take
seconds and no per-chat pacing applies. The end-to-end tests use the `harness` fixture instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.app import DiaryBot
from bot.clock import FakeClock, from_iso
from bot.delivery.inbound import NO_LIMITS
from bot.domain.study import Study
from bot.services.enrolment import enroll, link_chat
from storage import repo
from tests.harness import Harness


@asynccontextmanager
async def offline_bot(path: Path, study: Study, start: datetime) -> AsyncIterator[DiaryBot]:
    """DiaryBot.create() without start(): the fake clock's moves run the scheduler's tick."""
    bot = await DiaryBot.create(
        db_path=path,
        study=study,
        clock=FakeClock(start),
        token="123456:OFFLINE",
        base_url="http://127.0.0.1:9/bot",
        inbound=NO_LIMITS,
    )
    try:
        yield bot
    finally:
        await bot.stop()


def clock(bot: DiaryBot) -> FakeClock:
    c = bot.rt.clock
    assert isinstance(c, FakeClock)
    return c


async def linked_patient(
    bot: DiaryBot,
    subject: str,
    injection: date,
    tz: str,
    prompt: time = time(20, 0),
    *,
    chat_id: int = 501,
    lang: str = "en",
) -> repo.Patient:
    """Enrol a subject and redeem the code for `chat_id`, as /start CODE would."""
    enrolment = await enroll(bot.rt, subject, injection, lang, tz, prompt)
    result = await link_chat(bot.rt, chat_id, chat_id, enrolment.code)
    assert result.status == "ok" and result.patient is not None
    await bot.rt.poke_scheduler()
    return result.patient


async def visit(bot: DiaryBot, instants: Iterable[datetime]) -> None:
    """Set the clock to each instant in order (each move is one scheduler tick)."""
    c = clock(bot)
    for when in sorted(set(instants)):
        if when > c.now():
            await c.set(when)


async def follow_alarm(bot: DiaryBot, until: datetime) -> int:
    """Wake exactly when the scheduler says the next thing is due, as APScheduler would."""
    c = clock(bot)
    ticks = 0
    while True:
        nxt = await bot.scheduler.next_change(c.now())
        if nxt is None or nxt > until:
            return ticks
        await c.set(nxt)
        ticks += 1


async def rows(bot: DiaryBot, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    return await bot.rt.db.fetchall(sql, params)


async def prompts(bot: DiaryBot, subject: str, kind: str = "prompted") -> list[Any]:
    """Outbox rows of prompts (or reminders) for one subject, joined to their occurrence."""
    return await rows(
        bot,
        "SELECT o.*, x.created_at AS queued_at, x.payload FROM outbox x JOIN occurrences o"
        " ON x.ref = ? || ':' || o.id JOIN patients p ON p.id = o.patient_id"
        " WHERE p.subject = ? ORDER BY o.opens_at",
        (kind, subject),
    )


def local(at: str, tz: str) -> datetime:
    return from_iso(at).astimezone(ZoneInfo(tz))


async def complete_diary(bot: DiaryBot, subject: str, occ_id: int) -> None:
    """Fill in and submit one diary through DiaryService, the calmest answer to each item."""
    patient = await repo.patient_by_subject(bot.rt.db.conn, subject)
    assert patient is not None
    svc = bot.diary
    outcome = await svc.open(patient, occ_id)
    for _ in range(30):
        if outcome.status == "review":
            outcome = await svc.submit(patient, occ_id)
            assert outcome.status == "submitted", outcome.status
            return
        assert outcome.status in ("question", "updated"), outcome.status
        item = outcome.item
        assert item is not None
        if item.kind == "single":
            outcome = await svc.answer(patient, occ_id, item.code, item.options[0].code)
        elif item.kind in ("scale", "count"):
            outcome = await svc.answer(patient, occ_id, item.code, str(int(item.min or 0)))
        elif item.kind == "multi":
            none = next(o.code for o in item.options if o.exclusive)
            await svc.toggle(patient, occ_id, item.code, none)
            outcome = await svc.multi_done(patient, occ_id, item.code)
        else:
            typed = await svc.typed(patient, "ok" if item.kind == "text" else str(item.min))
            assert typed is not None
            outcome = typed
    raise AssertionError("diary did not finish")


async def occurrence_rows(bot: DiaryBot, subject: str) -> list[Any]:
    return await rows(
        bot,
        "SELECT o.* FROM occurrences o JOIN patients p ON p.id = o.patient_id"
        " WHERE p.subject = ? ORDER BY o.opens_at",
        (subject,),
    )


async def outbox_texts(bot: DiaryBot, chat_id: int) -> list[str]:
    found = await rows(bot, "SELECT payload FROM outbox WHERE chat_id = ? ORDER BY id", (chat_id,))
    return [json.loads(r[0]).get("text") or "" for r in found]


async def restart(h: Harness, at: datetime) -> Harness:
    """Stop the bot and build a new one on the same database file, its clock at `at`.

    A new FakeClock: the old one still calls the stopped bot's scheduler when it moves.
    The caller stops the returned bot (the fixture stops only the first one).
    """
    await h.bot.stop()
    c = FakeClock(at)
    bot = await DiaryBot.create(
        db_path=h.db_path,
        study=h.study,
        clock=c,
        token="123456:TEST-TOKEN",
        base_url=h.api.base_url,
        base_file_url=h.api.base_file_url,
        inbound=NO_LIMITS,
    )
    await bot.start(poll_timeout=1)
    new = Harness(api=h.api, bot=bot, clock=c, study=h.study, db_path=h.db_path)
    await new.settle()
    return new


async def add_staff(
    h: Harness, telegram_id: int = 9001, lang: str = "en", role: str = "coordinator"
) -> None:
    await h.rt.db.execute(
        "INSERT INTO staff (telegram_id, role, name, lang, active, created_at)"
        " VALUES (?, ?, 'Staff member', ?, 1, '2026-01-01T00:00:00.000000Z')",
        (telegram_id, role, lang),
    )
