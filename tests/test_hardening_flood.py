"""Issue 11 §1: a flood from one user stalls nobody and cannot grow the database.

The real limits (`InboundLimits()`), the real bot and the loopback server. The flood guard's
buckets run on real time; here they get a clock of their own (`FakeTime`) that moves only
when a test says so, so what is dropped is decided by the test, not by the machine's speed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.delivery.inbound import FloodGuard, InboundLimits
from bot.domain.study import Study
from storage import db as storage_db
from tests.conftest import MACHINE_SPEED, T0
from tests.harness import Harness, running_harness

STRANGER = 666
PATIENT = 501
COORDINATOR = 1001
SLOW_DOWN_EN = "You are sending messages too quickly"
SLOW_DOWN_ZH = "您发送消息太快了"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def limited(tmp_path: Path, study: Study) -> AsyncIterator[tuple[Harness, FakeTime]]:
    async with running_harness(
        tmp_path, study, start=T0, pacing=MACHINE_SPEED, inbound=InboundLimits()
    ) as h:
        guard = h.bot.hooks.flood_guard
        assert isinstance(guard, FloodGuard)
        clock = FakeTime()
        guard.monotonic = clock
        yield h, clock


def guard_of(h: Harness) -> FloodGuard:
    guard = h.bot.hooks.flood_guard
    assert isinstance(guard, FloodGuard)
    return guard


async def table_sizes(h: Harness) -> dict[str, int]:
    names = [
        r[0]
        for r in await h.rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {n: int(await h.rt.db.scalar(f"SELECT COUNT(*) FROM {n}")) for n in names}


async def test_a_thousand_updates_from_a_stranger_stall_nobody_and_write_nothing_each(
    tmp_path: Path, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited(tmp_path, study) as (h, _):
        patient = await h.patient(PATIENT, lang="en")
        await h.rt.db.execute(
            "INSERT INTO staff (telegram_id, role, name, lang, active, created_at)"
            " VALUES (?, 'coordinator', 'Li', 'en', 1, '2026-01-01T00:00:00.000000Z')",
            (COORDINATOR,),
        )
        before = await table_sizes(h)
        handled: list[int] = []
        real = storage_db.Database.transaction

        @asynccontextmanager
        async def counting(self: storage_db.Database) -> AsyncIterator[Any]:
            mark = storage_db.handling_update.get()
            async with real(self) as conn:
                yield conn
            if mark is not None:
                handled.append(mark.update_id)

        monkeypatch.setattr(storage_db.Database, "transaction", counting)
        for _ in range(1000):  # within one (guard) second
            h.api.send_text(STRANGER, "/alerts", language_code="en")
        h.api.send_text(PATIENT, "/help", language_code="en")
        h.api.send_text(COORDINATOR, "/alerts", language_code="en")
        await h.settle(timeout=60)

        assert "symptom diary" in patient.last_text  # answered, after the flood
        assert h.api.messages(COORDINATOR)  # /alerts answered too
        stranger = h.api.messages(STRANGER)
        assert [m.text for m in stranger] == ["This is not available."]  # one reply, no more
        guard = guard_of(h)
        assert guard.stats["dropped"] == 995  # a burst of 5 handled, the rest dropped
        # Writes made while handling an update: the 5 handled ones (their replies held back
        # still count the attempt), the patient's and the coordinator's — none per drop.
        assert len(set(handled)) <= 5 + 2
        after = await table_sizes(h)
        grown = {name: after[name] - before[name] for name in after if after[name] != before[name]}
        assert grown.get("audit", 0) <= 2  # the coordinator's access (and nothing of the flood)
        assert grown.get("outbox", 0) <= 4
        assert grown.get("stranger_activity") == 1  # one counter row
        # polling confirmed everything: the flood is not fetched again after a restart
        assert h.bot.app.last_update_id == h.api.state._next_update_id - 1
        saved = await h.rt.db.scalar("SELECT value FROM meta WHERE key = 'last_update_id'")
        assert int(saved) == h.bot.app.last_update_id

        # When the hour is over: ONE audit entry for the stranger, with the counts.
        await h.advance(hours=1)
        [entry] = await h.rows(
            "SELECT actor, entity, new_value FROM audit WHERE action = 'stranger_activity'"
        )
        assert entry["actor"] == f"user:{STRANGER}"
        assert entry["entity"] == "2026-11-30T11:00:00.000000Z"
        summary = json.loads(entry["new_value"])
        assert summary == {
            "count": 1000,
            "actions": {"unauthorized:command:/alerts": 5, "dropped (flood limit)": 995},
        }
        assert not await h.rows("SELECT * FROM stranger_activity")


async def test_a_patient_over_the_limit_is_asked_once_to_slow_down_then_goes_on(
    tmp_path: Path, study: Study
) -> None:
    async with limited(tmp_path, study) as (h, clock):
        p = await h.patient(PATIENT, lang="zh_Hans")
        before = len(p.messages)
        for _ in range(30):
            h.api.send_text(PATIENT, "/help", language_code="zh-hans")
        await h.settle()
        texts = p.texts()[before:]
        helps = [t for t in texts if SLOW_DOWN_ZH not in t]
        # the burst was handled; one "slow down" in the patient's language; the rest dropped
        assert len(helps) == 4  # 5 tokens: one went to /start
        assert sum(SLOW_DOWN_ZH in t for t in texts) == 1
        assert guard_of(h).stats["dropped"] == 26
        assert not await h.rows("SELECT * FROM audit WHERE action = 'stranger_activity'")

        clock.now += 30  # half a minute later the buckets have refilled a little
        await p.send("/help")
        assert SLOW_DOWN_ZH not in p.last_text and "症状日记" in p.last_text
        for _ in range(20):  # over the limit again within the minute: no second warning
            h.api.send_text(PATIENT, "/help", language_code="zh-hans")
        await h.settle()
        assert sum(SLOW_DOWN_ZH in t for t in p.texts()) == 1
        clock.now += 61
        for _ in range(20):
            h.api.send_text(PATIENT, "/help", language_code="zh-hans")
        await h.settle()
        assert sum(SLOW_DOWN_ZH in t for t in p.texts()) == 2  # one a minute


async def test_a_stranger_gets_one_reply_a_minute_but_can_still_enrol(
    tmp_path: Path, study: Study
) -> None:
    async with limited(tmp_path, study) as (h, clock):
        code = await h.enroll("RP-001", lang="en")
        s = h.player(STRANGER, "en")
        await s.send("hello")
        assert len(s.messages) == 1 and "enrolment code" in s.last_text
        clock.now += 10
        await s.send("is anyone there?")
        await s.send("WRONGCODE12")  # a wrong code: counted, not answered this minute
        assert len(s.messages) == 1
        await h.advance(minutes=1)
        await s.send("WRONGCODE34")
        assert len(s.messages) == 2 and "not right" in s.last_text
        clock.now += 10
        await s.send(code)  # the right code within the minute: welcomed at once
        assert "Welcome" in s.last_text and "RP-001" in s.last_text
        await s.send("/help")  # a patient now: no stranger limit
        assert "symptom diary" in s.last_text
        counted = await h.rows(
            "SELECT action, count FROM stranger_activity WHERE user_id = ? ORDER BY action",
            (STRANGER,),
        )
        assert [tuple(r) for r in counted] == [("code_refused:wrong", 2)]
        assert not await h.rows("SELECT * FROM audit WHERE action = 'code_refused'")
        await h.advance(hours=1)
        [entry] = await h.rows("SELECT new_value FROM audit WHERE action = 'stranger_activity'")
        assert json.loads(entry["new_value"]) == {
            "count": 2,
            "actions": {"code_refused:wrong": 2},
        }


def test_limits_are_a_handful_a_second_and_a_few_dozen_a_minute() -> None:
    limits = InboundLimits()
    assert 3 <= limits.burst <= 10 and 1 <= limits.per_second <= 5
    assert 20 <= limits.per_minute <= 60
    assert timedelta(seconds=limits.slow_down_every) == timedelta(minutes=1)
