"""`diarybot status` and the health line: what an operator looks at first."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

import pytest

from bot import messenger
from bot.cli import main
from bot.delivery.cli import cmd_status
from bot.domain.study import Study
from bot.messenger import Priority
from tests.delivery_support import delivery_harness, enrol_linked, queue
from tests.harness import Harness


async def _cli(h: Harness, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setenv("DIARYBOT_DB", str(h.db_path))
    monkeypatch.delenv("DIARYBOT_STUDY", raising=False)
    return await asyncio.to_thread(main, list(argv))


async def test_status_shows_queue_oldest_unreachable_and_alerts(
    tmp_path: Path,
    study: Study,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with delivery_harness(tmp_path, study) as h:
        [blocked, _] = await enrol_linked(h, 2)
        h.api.block(blocked)
        await h.advance(hours=1)  # the blocked patient's prompt meets 403
        await h.bot.sender.stop()  # from here on, what is queued stays queued
        async with h.rt.db.transaction() as conn:
            for priority, count in ((Priority.URGENT, 1), (Priority.PROMPT, 3)):
                for n in range(count):
                    await messenger.enqueue(conn, h.rt.now(), 900 + n, "x", priority=priority)
            await conn.execute("UPDATE outbox SET not_before = '2099-01-01T00:00:00.000000Z'"
                               " WHERE id = (SELECT MAX(id) FROM outbox)")  # fmt: skip
        await h.clock.advance(minutes=7)  # the oldest queued message is 7 minutes old

        # the command's function with the test clock (the CLI itself reads the system clock)
        assert await cmd_status(argparse.Namespace(json=False), h.rt) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert (
            lines[0]
            == "outbox: 4 queued (urgent 1, reply 0, prompt 2, digest 0; waiting to retry 1:"
            " prompt 1)"
        )
        assert lines[1].startswith("oldest queued: 7 min (urgent)"), out
        assert "sent in the last hour: 1; failed in the last 24 h: 1" in out
        assert "unreachable patients: 1: DL-0000 (since 2026-11-30 12:00 UTC)" in out
        assert "open alerts: 1 (compliance 1)" in out  # the escalation's "blocked" alert

        assert await cmd_status(argparse.Namespace(json=True), h.rt) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["queued"] == {"urgent": 1, "reply": 0, "prompt": 2, "digest": 0}
        assert data["parked"] == 1 and data["unreachable"][0]["subject"] == "DL-0000"
        assert data["parked_by"] == {"prompt": 1}
        assert data["open_alerts"] == {"compliance": 1}
        assert 419 < data["oldest_queued_seconds"] < 421

        # through `diarybot status`: the same report (its clock is the system's)
        assert await _cli(h, monkeypatch, "status") == 0
        out = capsys.readouterr().out
        assert out.startswith("outbox: 4 queued (") and "DL-0000" in out
        with pytest.raises(SystemExit) as bad:
            await _cli(h, monkeypatch, "status", "--bogus")
        assert bad.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


async def test_a_health_line_every_few_minutes(
    tmp_path: Path, study: Study, caplog: pytest.LogCaptureFixture
) -> None:
    async with delivery_harness(tmp_path, study) as h:
        caplog.set_level(logging.INFO, logger="bot.health")
        await queue(h, 501, "hello", Priority.REPLY)
        await h.settle()
        health = h.bot.hooks.health
        assert health is not None  # installed by bot/delivery/feature.py
        before = health.lines
        await h.advance(minutes=2)
        assert health.lines == before
        await h.advance(minutes=4)
        assert health.lines == before + 1
        line = [r.getMessage() for r in caplog.records if r.name == "bot.health"][-1]
        assert line.startswith("health: queued urgent=0 reply=0 prompt=0 digest=0 parked=0")
        assert "sent_1h=1" in line and "unreachable=0" in line and "sender sent=1" in line
