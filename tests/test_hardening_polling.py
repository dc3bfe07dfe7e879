"""Issue 11 §2: polling never stops silently.

Each test reproduces one way the red team stopped update handling for good (an update PTB
cannot parse, a full disk, a write lock held by another process, a read-only database,
Telegram failing at start-up, a second bot, a vanished database file) through the real bot
and the loopback server, and shows it handled with nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from telegram.error import InvalidToken

from bot import app as app_module
from bot.app import DiaryBot
from bot.clock import FakeClock
from bot.domain.study import Study
from bot.localapi import LocalBotApi
from bot.ops import lock
from bot.sandbox.world import Sandbox
from tests.conftest import MACHINE_SPEED, T0
from tests.harness import Harness, Player
from tests.sandbox_support import site_study_file

TOKEN = "123456:TEST-TOKEN"
HELP = "symptom diary"


async def _until(check: object, what: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_an_update_ptb_cannot_parse_is_kept_raw_logged_once_and_skipped(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    p = await h.patient(501, lang="en")
    before = len(p.messages)
    bad = h.api.add_unparsable_update(501)
    await p.send("/help")  # the update after it is handled
    assert len(p.messages) == before + 1 and HELP in p.last_text
    [row] = await h.rows("SELECT update_id, error, raw FROM unparsable_updates")
    assert row["update_id"] == bad and row["error"] == "TypeError"
    assert "bleeding badly" in row["raw"]  # kept for support, in the (private) database
    assert h.bot.app.last_update_id > bad
    await h.api.wait_updates_consumed(timeout=5)  # confirmed to Telegram: not fetched again
    mentions = [r for r in caplog.records if str(bad) in r.getMessage()]
    assert len(mentions) == 1 and mentions[0].levelno == logging.ERROR
    assert "bleeding badly" not in caplog.text  # no personal data in the log


async def test_ptbs_raw_update_dump_is_not_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """python-telegram-bot's own get_updates logs the whole raw batch at CRITICAL."""
    h = harness
    await h.bot.stop()  # nobody else polls
    h.api.add_unparsable_update(501)
    from telegram import Bot

    async with Bot(TOKEN, base_url=h.api.base_url) as bot:
        with pytest.raises(TypeError):
            await bot.get_updates(timeout=0)
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical and all("bleeding" not in r.getMessage() for r in critical)
    assert "bleeding badly" not in caplog.text
    h.bot = await _restart(h)


async def _restart(h: Harness) -> DiaryBot:
    bot = await DiaryBot.create(
        db_path=h.db_path,
        study=h.study,
        clock=h.clock,
        token=TOKEN,
        base_url=h.api.base_url,
        base_file_url=h.api.base_file_url,
        pacing=MACHINE_SPEED,
    )
    await bot.start(poll_timeout=1)
    return bot


async def _write_refused_then_recovers(h: Harness, p: Player, block: str, unblock: str) -> None:
    """`block` makes the bot's writes fail; a /help meanwhile is retried until `unblock`."""
    before = len(p.messages)
    poller = h.bot.poller
    assert poller is not None
    await h.rt.db.conn.execute(block)
    h.api.send_text(p.user_id, "/help", language_code="en")
    await _until(lambda: poller.retries >= 2, "the update to be retried")
    assert len(p.messages) == before
    last = h.bot.app.last_update_id
    assert h.api.pending_updates == 1  # not confirmed: it would survive a restart
    await h.rt.db.conn.execute(unblock)
    await h.settle(timeout=40)
    assert h.bot.app.last_update_id > last
    assert len(p.messages) == before + 1 and HELP in p.last_text  # once, not lost


async def test_a_read_only_database_is_retried_until_it_is_writable(harness: Harness) -> None:
    p = await harness.patient(501, lang="en")
    await _write_refused_then_recovers(harness, p, "PRAGMA query_only = 1", "PRAGMA query_only = 0")


async def test_a_full_disk_is_retried_until_there_is_room(harness: Harness) -> None:
    h = harness
    p = await h.patient(501, lang="en")
    conn = h.rt.db.conn
    [(pages,)] = list(await conn.execute_fetchall("PRAGMA page_count"))
    await conn.execute("CREATE TABLE filler (x TEXT)")
    await conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        for _ in range(100_000):  # use up the free pages
            await h.rt.db.execute("INSERT INTO filler VALUES ('0123456789')")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        for _ in range(100_000):  # and the free bytes in the outbox's own pages
            await h.rt.db.execute(
                "INSERT INTO outbox (priority, chat_id, kind, payload, status, not_before,"
                " created_at) VALUES (3, 0, 'send', '{}', 'sent', '', '')"
            )
    await _write_refused_then_recovers(
        h, p, "PRAGMA max_page_count = 0", "PRAGMA max_page_count = 1073741823"
    )


async def test_a_write_lock_held_by_another_process_is_waited_out(harness: Harness) -> None:
    h = harness
    p = await h.patient(501, lang="en")
    await h.rt.db.conn.execute("PRAGMA busy_timeout = 50")  # instead of waiting 5 s per try
    # The other process's statements run in a thread: BEGIN IMMEDIATE waits (sqlite3's busy
    # timeout) while the bot finishes a transaction of its own, which needs the event loop.
    other = sqlite3.connect(h.db_path, isolation_level=None, check_same_thread=False)
    try:
        before = len(p.messages)
        poller = h.bot.poller
        assert poller is not None
        # e.g. a backup tool holding the lock for 12 s
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        h.api.send_text(p.user_id, "/help", language_code="en")
        await _until(lambda: poller.retries >= 2, "the update to be retried")
        assert len(p.messages) == before
        await asyncio.to_thread(other.execute, "COMMIT")
        await h.settle(timeout=40)
        assert len(p.messages) == before + 1 and HELP in p.last_text
    finally:
        other.close()


async def test_start_up_retries_telegram_failures_and_then_runs(
    tmp_path: Path, study: Study
) -> None:
    api = LocalBotApi()
    await api.start()
    api.faults.fail_next = {"getMe": 2, "setMyCommands": 1, "deleteWebhook": 1}
    bot = await DiaryBot.create(
        db_path=tmp_path / "db.sqlite3",
        study=study,
        clock=FakeClock(T0),
        token=TOKEN,
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        pacing=MACHINE_SPEED,
    )
    try:
        await bot.start(poll_timeout=1)
        assert api.stats["5xx"] == 4 and not any(api.faults.fail_next.values())
        api.send_text(777, "/help", language_code="en")
        msg = await api.wait_for_message(777, timeout=10)
        assert HELP in (msg.text or "")
    finally:
        await bot.stop()
        await api.stop()


async def test_a_rejected_token_fails_start_up_and_closes_the_database(
    tmp_path: Path, study: Study
) -> None:
    api = LocalBotApi()
    await api.start()
    api.faults.reject_token = True
    path = tmp_path / "db.sqlite3"
    bot = await DiaryBot.create(
        db_path=path,
        study=study,
        clock=FakeClock(T0),
        token=TOKEN,
        base_url=api.base_url,
        lock=lock.acquire(path),
    )
    try:
        with pytest.raises(InvalidToken):
            await bot.start(poll_timeout=1)
        assert not lock.is_locked(path)  # stopped: the lock is released…
        with pytest.raises(ValueError, match="Connection closed"):
            await bot.rt.db.fetchone("SELECT 1")  # …and the database closed
    finally:
        await api.stop()


async def test_a_second_bot_or_sandbox_on_the_same_database_is_refused(
    tmp_path: Path, study: Study
) -> None:
    path = tmp_path / "sandbox.sqlite3"
    with lock.acquire(path):  # a running bot (`diarybot run` holds it while it runs)
        with pytest.raises(lock.Locked, match=f"pid {os.getpid()}"):
            lock.acquire(path)
        sandbox = Sandbox(path, study, T0)
        with pytest.raises(lock.Locked, match=f"pid {os.getpid()}"):
            await sandbox.start()  # refused before it clears its database file
    assert not lock.is_locked(path)


async def test_a_database_file_that_disappears_stops_the_bot(harness: Harness) -> None:
    h = harness
    p = await h.patient(501, lang="en")
    before = len(p.messages)
    for suffix in ("", "-wal", "-shm"):
        os.unlink(f"{h.db_path}{suffix}")
    h.api.send_text(p.user_id, "/help", language_code="en")
    why = await asyncio.wait_for(h.bot.failed(), timeout=10)
    assert "disappeared" in why
    assert len(p.messages) == before  # nothing handled into a file nobody can read
    assert h.api.pending_updates == 1  # still with Telegram for the restored database


async def test_a_dead_poller_is_reported(harness: Harness) -> None:
    harness.api.faults.reject_token = True  # the token is revoked while the bot runs
    why = await asyncio.wait_for(harness.bot.failed(), timeout=10)
    assert why == "the poller task died: InvalidToken"


async def test_a_dead_sender_is_reported(harness: Harness) -> None:
    h = harness
    sender = h.bot.sender

    async def broken_wait() -> bool:  # outside the round's own try: nothing catches it
        raise RuntimeError("event loop trouble")

    sender._wake.wait = broken_wait  # type: ignore[method-assign,assignment]
    sender.wake()
    why = await asyncio.wait_for(h.bot.failed(), timeout=10)
    assert why == "the sender task died: RuntimeError: event loop trouble"


async def test_a_sender_that_returns_is_reported(harness: Harness) -> None:
    h = harness
    h.bot.sender._stopping = True  # its loop ends quietly, though nobody stopped the bot
    h.bot.sender.wake()
    why = await asyncio.wait_for(h.bot.failed(), timeout=10)
    assert why == "the sender task ended unexpectedly"


async def test_a_stopped_scheduler_is_reported(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "WATCH_SECONDS", 0.05)  # from the watchdog's next round
    aps = harness.bot.scheduler.aps
    assert aps is not None and aps.running
    aps.shutdown(wait=False)  # APScheduler stops while the bot runs
    why = await asyncio.wait_for(harness.bot.failed(), timeout=15)
    assert why == "the scheduler stopped"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _started_and_answering(starting: asyncio.Task[None], api: LocalBotApi) -> None:
    """Start-up finishes once Telegram answers, and the bot then answers a patient."""
    await asyncio.wait_for(starting, timeout=30)
    api.send_text(777, "/help", language_code="en")
    msg = await api.wait_for_message(777, timeout=10)
    assert HELP in (msg.text or "")


async def _shut_down(starting: asyncio.Task[None], bot: DiaryBot, api: LocalBotApi) -> None:
    if not starting.done():
        starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    await bot.stop()
    await api.stop()


async def test_start_up_retries_a_refused_connection_until_telegram_listens(
    tmp_path: Path, study: Study, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()  # nothing listens there yet: every connection is refused
    bot = await DiaryBot.create(
        db_path=tmp_path / "db.sqlite3",
        study=study,
        clock=FakeClock(T0),
        token=TOKEN,
        base_url=f"http://127.0.0.1:{port}/bot",
        base_file_url=f"http://127.0.0.1:{port}/file/bot",
        pacing=MACHINE_SPEED,
    )
    api = LocalBotApi()
    starting = asyncio.create_task(bot.start(poll_timeout=1))
    try:

        def retries() -> int:
            return sum("start-up:" in r.getMessage() for r in caplog.records)

        await _until(lambda: retries() >= 2, "two refused connections to be retried", 20)
        assert not starting.done()  # still trying, not given up
        await api.start(port=port)  # Telegram is reachable again
        await _started_and_answering(starting, api)
        assert api.stats["call:getMe"] >= 1
    finally:
        await _shut_down(starting, bot, api)


async def test_start_up_retries_a_timed_out_get_me(tmp_path: Path, study: Study) -> None:
    api = LocalBotApi()
    await api.start()
    api.faults.apply_to = {"getMe"}
    api.faults.slow_seconds = 5.0  # getMe answers later than the bot waits
    bot = await DiaryBot.create(
        db_path=tmp_path / "db.sqlite3",
        study=study,
        clock=FakeClock(T0),
        token=TOKEN,
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        pacing=MACHINE_SPEED,
        # Generous for every other call on a loaded CI machine; getMe alone is made slower.
        read_timeout=1.0,
    )
    starting = asyncio.create_task(bot.start(poll_timeout=1))
    try:
        await api.wait_until(lambda: api.stats["slow"] >= 2, timeout=20)
        assert not starting.done()
        api.faults.slow_seconds = 0.0  # Telegram answers in time again
        await _started_and_answering(starting, api)
    finally:
        await _shut_down(starting, bot, api)


# ---------------------------------------------------------------- the process (`diarybot run`)
def _env(api: LocalBotApi, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DIARYBOT_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_BASE_URL=api.base_url,
        TELEGRAM_BASE_FILE_URL=api.base_file_url,
        DIARYBOT_DB=str(db),
        DIARYBOT_STUDY=str(site_study_file(db.parent)),  # `run` refuses the placeholder phone
    )
    return env


async def _run(api: LocalBotApi, db: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        *args,
        env=_env(api, db),
        cwd=db.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, err.decode()


async def test_run_exits_2_in_one_line_when_telegram_rejects_the_token(tmp_path: Path) -> None:
    api = LocalBotApi()
    await api.start()
    try:
        api.faults.reject_token = True
        code, err = await _finish(await _run(api, tmp_path / "db.sqlite3", "--init"))
    finally:
        await api.stop()
    assert code == 2
    assert err.strip().endswith("diarybot: error: Telegram rejected the bot token (check .env)")
    assert "Traceback" not in err and "TEST-TOKEN" not in err


async def test_run_refuses_a_missing_database_unless_told_to_create_it(tmp_path: Path) -> None:
    api = LocalBotApi()
    await api.start()
    db = tmp_path / "gone.sqlite3"
    try:
        code, err = await _finish(await _run(api, db))
    finally:
        await api.stop()
    assert code == 1 and "no database at" in err and "--init" in err
    assert not db.exists()


async def test_run_starts_through_502s_and_exits_1_when_polling_dies(tmp_path: Path) -> None:
    api = LocalBotApi()
    await api.start()
    api.faults.fail_next = {"getMe": 2, "setMyCommands": 2}
    db = tmp_path / "db.sqlite3"
    try:
        proc = await _run(api, db, "--init")
        await api.wait_until(lambda: api.stats["call:getUpdates"] > 0, timeout=30)
        # A second bot on the same database exits at once, naming the first.
        second, err2 = await _finish(await _run(api, db))
        assert second == 1 and f"pid {proc.pid}" in err2
        api.faults.reject_token = True  # then the token is revoked
        code, err = await _finish(proc)
    finally:
        await api.stop()
    assert code == 1
    assert "the poller task died: InvalidToken" in err
    assert "TEST-TOKEN" not in err
