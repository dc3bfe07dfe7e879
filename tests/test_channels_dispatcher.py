"""The channel dispatcher: urgent first within the rate limit, retries, and nothing lost when
the process dies mid-send (the database reopened, as after a crash)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.dispatcher import ChannelDispatcher, TokenBucket
from bot.channels.outbox import enqueue_email, enqueue_sms, enqueue_wecom
from bot.channels.patients import notify_patient, route_for_patient
from bot.channels.sms.log import LogSms
from bot.channels.sms.route import SmsRoute
from bot.channels.sms.webhook import WebhookSms
from bot.clock import FakeClock
from bot.domain.study import Study
from bot.messenger import Priority
from storage import repo
from storage.db import Database

T0 = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def _queue(db: Database, n: int, priority: Priority, start: int = 0) -> list[int]:
    async with db.transaction() as conn:
        return [
            await enqueue_sms(conn, T0, f"+861380000{i:04d}", f"prompt {i}", priority)
            for i in range(start, start + n)
        ]


async def test_urgent_goes_next_within_the_rate_limit(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "d.sqlite3")
    provider = LogSms()
    route = SmsRoute(provider, rate=50.0, burst=1)
    d = ChannelDispatcher(db, FakeClock(T0), [route], max_in_flight=1)
    lane = d.lanes["sms"]
    try:
        prompts = await _queue(db, 30, Priority.PROMPT)
        d.start()
        await _until(lambda: lane.stats["sent"] >= 3)
        sent_before = lane.stats["sent"]
        [urgent] = await _queue(db, 1, Priority.URGENT, start=100)
        d.wake()
        await d.wait_idle()
        order = lane.sent_order
        assert sorted(order) == sorted([*prompts, urgent])
        # At most the one send already under way went before it.
        assert order.index(urgent) <= sent_before + 1
        assert [m.text for m in provider.sent][: order.index(urgent)] == [
            f"prompt {i}" for i in range(order.index(urgent))
        ]
    finally:
        await d.stop()
        await db.close()


def test_token_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    now = bucket.at
    for _ in range(3):
        assert bucket.ready_in(now) == 0
        bucket.take(now)
    assert bucket.ready_in(now) == pytest.approx(0.5)
    assert bucket.ready_in(now + 0.5) == 0


async def test_crash_mid_send_keeps_the_row_and_it_is_sent_after_restart(tmp_path: Path) -> None:
    """The gateway takes the request but the process dies before its answer: the row stays
    queued (never marked sent without the provider's yes) and goes out after the restart."""
    arrived = asyncio.Event()
    release = asyncio.Event()
    got: list[dict[str, str]] = []

    async def slow(request: web.Request) -> web.Response:
        got.append(await request.json())
        arrived.set()
        await release.wait()
        return web.json_response({"id": 1})

    app = web.Application()
    app.router.add_post("/sms", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    path = tmp_path / "crash.sqlite3"
    db = await Database.open(path)
    try:
        await _queue(db, 2, Priority.PROMPT)
        async with db.transaction() as conn:
            await enqueue_wecom(conn, T0, str(server.make_url("/nowhere")), "**x**")
            await enqueue_email(conn, T0, "team@example-hospital.cn", "s", "b")
        d = ChannelDispatcher(
            db, FakeClock(T0), [SmsRoute(WebhookSms(str(server.make_url("/sms"))))]
        )
        d.start()
        await asyncio.wait_for(arrived.wait(), 10)
        await d.stop()  # the "crash": the send is cancelled before its answer
        await db.close()

        db = await Database.open(path)  # restart
        rows = await db.fetchall("SELECT channel, status FROM outbox ORDER BY id")
        assert [(r["channel"], r["status"]) for r in rows] == [
            ("sms", "queued"), ("sms", "queued"), ("wecom", "queued"), ("email", "queued"),
        ]  # fmt: skip
        release.set()
        provider = LogSms()
        d = ChannelDispatcher(db, FakeClock(T0), [SmsRoute(provider)])
        d.start()
        await d.wait_idle()
        await d.stop()
        assert [m.text for m in provider.sent] == ["prompt 0", "prompt 1"]
        rows = await db.fetchall("SELECT channel, status FROM outbox ORDER BY id")
        # Channels without a configured route keep their rows for when one is configured.
        assert [r["status"] for r in rows] == ["sent", "sent", "queued", "queued"]
    finally:
        await db.close()
        await server.close()


async def test_retries_back_off_by_the_study_clock(tmp_path: Path) -> None:
    app = web.Application()
    calls: list[int] = []

    async def flaky(request: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(status=503 if len(calls) < 3 else 200, text="{}")

    app.router.add_post("/sms", flaky)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    db = await Database.open(tmp_path / "r.sqlite3")
    clock = FakeClock(T0)
    d = ChannelDispatcher(db, clock, [SmsRoute(WebhookSms(str(server.make_url("/sms"))))], seed=1)
    try:
        await _queue(db, 1, Priority.URGENT)
        d.start()
        for attempt in (1, 2):
            await _until(lambda n=attempt: d.lanes["sms"].stats["retried"] == n)  # type: ignore[misc]
            row = await db.fetchone("SELECT status, attempts, last_error, not_before FROM outbox")
            assert row is not None and row["status"] == "queued" and row["attempts"] == attempt
            assert "HTTP 503" in row["last_error"]
            await d.wait_idle()  # parked: not due until the clock moves
            await clock.advance(timedelta(seconds=15 * attempt))
            d.wake()
        await _until(lambda: d.lanes["sms"].stats["sent"] == 1)
        row = await db.fetchone("SELECT status, attempts FROM outbox")
        assert row is not None and (row["status"], row["attempts"]) == ("sent", 3)
    finally:
        await d.stop()
        await db.close()
        await server.close()


async def test_bad_destinations_are_refused_before_queueing(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "v.sqlite3")
    try:
        async with db.transaction() as conn:
            for bad in ("13812345678", "+86 138", "+0123456789", ""):
                with pytest.raises(ValueError, match=r"E\.164"):
                    await enqueue_sms(conn, T0, bad, "x")
            with pytest.raises(ValueError, match="template"):
                await enqueue_sms(conn, T0, "+8613812345678", "x", template="nonsense")
            with pytest.raises(ValueError, match="e-mail"):
                await enqueue_email(conn, T0, "not-an-address", "s", "b")
            with pytest.raises(ValueError, match="URL"):
                await enqueue_wecom(conn, T0, "key=abc", "x")
        assert await db.scalar("SELECT COUNT(*) FROM outbox") == 0
    finally:
        await db.close()


# --------------------------------------------------------------------------- patients


def test_route_for_patient() -> None:
    web_patient = {"channel": "web", "phone": "+8613812345678", "chat_id": None}
    assert route_for_patient(web_patient) == route_for_patient({**web_patient, "unreachable": 1})
    assert route_for_patient(web_patient).channel == "sms"  # type: ignore[union-attr]
    assert route_for_patient({"channel": "web", "phone": None}) is None
    assert route_for_patient({"channel": "web", "phone": "138"}) is None
    tg = route_for_patient({"channel": "telegram", "chat_id": 501})
    assert tg is not None and (tg.channel, tg.chat_id) == ("telegram", 501)
    assert route_for_patient({"chat_id": 501}) == tg  # no channel column yet: Telegram
    assert route_for_patient({"chat_id": None}) is None
    assert route_for_patient({"chat_id": 501, "unreachable": 1}) is None


async def test_notify_patient_by_sms_or_telegram(tmp_path: Path, study: Study) -> None:
    """Web patients (a patients table with `channel` and `phone`, as migration 0013 adds them)
    get the study's SMS template; Telegram patients the chat message, unchanged."""
    db = await Database.open(tmp_path / "p.sqlite3")
    try:
        async with db.transaction() as conn:
            for subject, chat, channel, phone in (
                ("RP-001", 501, "telegram", None),
                ("RP-002", None, "web", "+8613812345678"),
            ):
                await conn.execute(
                    "INSERT INTO patients (subject, injection_date, enrolled_on, lang, timezone,"
                    " prompt_time, status, chat_id, channel, phone, created_at)"
                    " VALUES (?, '2026-12-01', '2026-11-30', 'zh_Hans', 'Asia/Shanghai', '20:00',"
                    " 'active', ?, ?, ?, '2026-11-30')",
                    (subject, chat, channel, phone),
                )
            rows = await repo._all(conn, "SELECT * FROM patients ORDER BY id")
            assert isinstance(rows[0], aiosqlite.Row)
            for row in rows:
                assert await notify_patient(
                    conn, T0, study, row, "prompt", telegram_text="open your diary"
                )
            assert await notify_patient(conn, T0, study, rows[1], "safety", telegram_text=None)
            assert not await notify_patient(conn, T0, study, rows[0], "safety", telegram_text=None)
        out = await db.fetchall(
            "SELECT channel, chat_id, destination, priority,"
            " json_extract(payload, '$.text') AS text,"
            " json_extract(payload, '$.purpose') AS purpose FROM outbox ORDER BY id"
        )
        assert [(r["channel"], r["chat_id"], r["destination"]) for r in out] == [
            ("telegram", 501, None),
            ("sms", 0, "+8613812345678"),
            ("sms", 0, "+8613812345678"),
        ]
        assert out[0]["text"] == "open your diary"
        assert out[1]["purpose"] == "prompt" and "日记" in out[1]["text"]
        assert out[2]["purpose"] == "safety" and study.emergency_number in out[2]["text"]
    finally:
        await db.close()
