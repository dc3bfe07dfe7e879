"""`/healthz` and `/metrics` on the running bot, and the heartbeat, with the injected clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from bot import messenger
from bot.cli import main
from bot.localapi import Faults
from bot.messenger import Priority
from bot.ops.health_http import parse_address
from bot.services.enrolment import enroll, link_chat
from tests.conftest import T0
from tests.harness import Harness
from tests.ops_http_support import get, ops_for, recorder, samples


async def stop_polling(h: Harness) -> None:
    """Telegram answers every getUpdates with 502 from now on (until the faults are reset)."""
    h.api.faults = Faults(error_5xx_fraction=1.0, apply_to={"getUpdates"})
    await h.api.wait_until(lambda: h.api.stats["5xx"] >= 1)


async def test_healthz_ok_with_polling_age_and_last_tick(harness: Harness) -> None:
    h = harness
    async with ops_for(h) as ops, aiohttp.ClientSession() as session:
        assert ops.server is not None
        await h.api.wait_until(lambda: ops.monitor.last_poll_ok is not None)
        await h.advance(minutes=1)  # a tick
        await h.api.wait_until(lambda: ops.monitor.last_poll_ok == h.clock.now())
        status, body = await get(session, ops.server.url + "/healthz")
        assert status == 200
        data = json.loads(body)
        assert data["status"] == "ok" and data["problems"] == []
        assert data["polling_age_seconds"] == 0
        assert data["oldest_urgent_queued_seconds"] is None
        assert data["last_tick"].startswith("2026-11-30T11:01:00")
        status, _ = await get(session, ops.server.url + "/nothing-here")
        assert status == 404


async def test_healthz_503_when_polling_stops_and_200_when_it_resumes(harness: Harness) -> None:
    h = harness
    async with ops_for(h) as ops, aiohttp.ClientSession() as session:
        assert ops.server is not None
        await h.api.wait_until(lambda: ops.monitor.last_poll_ok is not None)
        await stop_polling(h)
        await h.clock.advance(minutes=1, seconds=59)
        status, body = await get(session, ops.server.url + "/healthz")
        assert status == 200, body  # not yet two minutes
        await h.clock.advance(seconds=2)
        status, body = await get(session, ops.server.url + "/healthz")
        data = json.loads(body)
        assert status == 503 and data["status"] == "unhealthy"
        assert data["polling_age_seconds"] == 121
        assert "no successful getUpdates for 121 s" in data["problems"]
        metrics = samples((await get(session, ops.server.url + "/metrics"))[1])
        assert metrics["diarybot_healthy"] == 0
        h.api.faults = Faults()  # Telegram answers again
        await h.api.wait_until(lambda: ops.monitor.last_poll_ok == h.clock.now(), timeout=20)
        status, _ = await get(session, ops.server.url + "/healthz")
        assert status == 200


async def test_healthz_503_when_an_urgent_message_waits_over_5_minutes(harness: Harness) -> None:
    h = harness
    h.api.faults = Faults(error_5xx_fraction=1.0)  # Telegram refuses every send
    async with ops_for(h) as ops, aiohttp.ClientSession() as session:
        assert ops.server is not None
        async with h.rt.db.transaction() as conn:
            await messenger.enqueue(
                conn, h.clock.now(), 9001, "urgent (test)", priority=Priority.URGENT
            )
        h.rt.wake_sender()
        await h.clock.advance(minutes=5)
        await h.api.wait_until(lambda: ops.monitor.last_poll_ok == h.clock.now())
        status, body = await get(session, ops.server.url + "/healthz")
        assert status == 200, body  # exactly 5 minutes: not older than 5 minutes yet
        assert json.loads(body)["oldest_urgent_queued_seconds"] == 300
        await h.clock.advance(seconds=1)
        status, body = await get(session, ops.server.url + "/healthz")
        data = json.loads(body)
        assert status == 503
        assert "an urgent message has been queued for 301 s" in data["problems"]
        metrics = samples((await get(session, ops.server.url + "/metrics"))[1])
        waiting = (
            metrics['diarybot_outbox_queued{priority="urgent"}']
            + metrics['diarybot_outbox_parked{priority="urgent"}']
        )
        assert waiting == 1
        assert metrics["diarybot_oldest_urgent_queued_seconds"] == 301
        h.api.faults = Faults()


async def test_health_and_metrics_read_while_a_fan_out_runs(harness: Harness) -> None:
    h = harness
    from datetime import date
    from datetime import time as dtime

    users = []
    for n in range(40):
        result = await enroll(
            h.rt, f"FO-{n:03d}", date(2026, 12, 1), "en", "Asia/Shanghai", dtime(19, 1)
        )
        assert (await link_chat(h.rt, 7000 + n, 7000 + n, result.code)).status == "ok"
        users.append(7000 + n)
    h.api.faults = Faults(rate_limit_per_second=20)  # Telegram's flood limit, made tighter
    async with ops_for(h) as ops, aiohttp.ClientSession() as session:
        assert ops.server is not None
        await h.api.wait_until(lambda: ops.monitor.last_poll_ok is not None)
        await h.clock.advance(minutes=1)  # 19:01 in Shanghai: the tick queues 40 prompts
        reads: list[tuple[int, dict[str, float]]] = []
        while True:
            health, metrics = await asyncio.gather(
                get(session, ops.server.url + "/healthz"),
                get(session, ops.server.url + "/metrics"),
            )
            assert health[0] == 200, health[1]
            assert metrics[0] == 200
            values = samples(metrics[1])
            reads.append((health[0], values))
            if all(h.api.messages(u) for u in users):
                break
            await asyncio.sleep(0.05)
        await h.settle()
        assert reads[0][1]['diarybot_outbox_queued{priority="prompt"}'] > 0
        final = samples((await get(session, ops.server.url + "/metrics"))[1])
        assert final['diarybot_outbox_queued{priority="prompt"}'] == 0
        assert final['diarybot_sender_events_total{event="sent"}'] >= 40
        assert final["diarybot_outbox_sent_last_hour"] >= 40
        assert final['diarybot_open_alerts{level="urgent"}'] == 0
        assert final["diarybot_last_getupdates_timestamp_seconds"] == h.clock.now().timestamp()
        assert final["diarybot_start_time_seconds"] == T0.timestamp()
        assert final["process_start_time_seconds"] > 0
        assert final["diarybot_healthy"] == 1


async def test_heartbeat_every_minute_while_healthy(harness: Harness) -> None:
    h = harness
    async with recorder() as monitor_site:
        url = monitor_site.url + "/ping/5f3c"
        async with ops_for(h, heartbeat=url) as ops:
            beat = ops.heartbeat
            assert beat is not None
            await h.api.wait_until(lambda: ops.monitor.last_poll_ok is not None)
            await h.clock.advance(minutes=1)
            await h.api.wait_until(lambda: beat.sent == 1)
            assert monitor_site.paths == ["/ping/5f3c"]
            await h.clock.advance(seconds=30)  # a tick, but not a minute since the last beat
            await h.clock.advance(seconds=30)
            await h.api.wait_until(lambda: beat.sent == 2)
            # polling stops: unhealthy after two minutes, and the beats stop
            await stop_polling(h)
            await h.clock.advance(minutes=3)
            assert beat.last == T0.replace(minute=2)  # withheld at 11:05
            await h.clock.advance(minutes=1)
            assert beat.last == T0.replace(minute=2) and beat.sent == 2
            assert len(monitor_site.paths) == 2
            assert await beat.next_wake(h.clock.now()) == T0.replace(minute=3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9102", ("127.0.0.1", 9102)), ("[::1]:80", ("::1", 80))],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9102", "127.0.0.1", "host.example:9102", "1.2.3.4:99999"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="bad address"):
        parse_address(text)


def test_run_with_a_bad_health_address_exits_2_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST-TOKEN")
    monkeypatch.setenv("DIARYBOT_DB", str(tmp_path / "bot.sqlite3"))
    assert main(["run", "--health", "localhost"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--health / DIARYBOT_HEALTH: bad address" in err
    assert list(tmp_path.iterdir()) == []
