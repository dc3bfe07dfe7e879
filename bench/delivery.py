"""Delivery benchmarks against the loopback Bot-API server (issue: delivery).

    python -m bench.delivery              # all of them, a summary table at the end
    python -m bench.delivery fanout       # 1 + 2: 600 due prompts at an enforced 30 msg/s,
                                          #        and an urgent alert submitted meanwhile
    python -m bench.delivery tap          # 3: tap -> next question, p50/p95, unloaded
    python -m bench.delivery updates      # 4: updates/s, diary bot vs a bare PTB echo bot
    python -m bench.delivery startup      # 5: `diarybot run` with 10,000 subjects: start-up
                                          #    time and peak RSS of the bot process
    python -m bench.delivery --json ...   # machine-readable results (one JSON object)

Each comparison runs in one process against one server, so both sides see the same machine.
The schedule engineer's bench/schedule_10k.py measures the schedule at 10,000 subjects (ticks,
in-process start-up); `startup` reuses its database builder and measures the real process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import time as dtime
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "true")

from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from bench.common import (
    COORDINATOR,
    FIRST_USER,
    QUIET,
    T0,
    enrol,
    running_bot,
    settle,
    team,
)
from bot import messenger
from bot.app import DiaryBot
from bot.clock import FakeClock
from bot.domain.study import SHIPPED_PLACEHOLDER_PHONE, load_study
from bot.localapi import Faults, LocalBotApi, SentMessage
from bot.messenger import Priority

# ----------------------------------------------------------------------------- helpers


class Arrivals:
    """When each bot message reached the server (checked on every server event)."""

    def __init__(self, api: LocalBotApi) -> None:
        self.api = api
        self.times: list[float] = []

    def poll(self) -> bool:
        n = len(self.api.state.sent_order)
        now = time.perf_counter()
        while len(self.times) < n:
            self.times.append(now)
        return False


class Refusals(logging.Handler):
    """The sender's "429 for chat …" warnings: which chat, which scope."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.chats: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("429 for chat"):
            chat, _, scope = record.args  # type: ignore[misc]
            assert isinstance(chat, int)  # the sender logs msg.chat_id
            self.chats.append((int(chat), str(scope)))


async def watch(api: LocalBotApi, arrivals: Arrivals, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(AssertionError):  # wait_until's timeout: look again
            await api.wait_until(lambda: arrivals.poll() or stop.is_set(), timeout=1)


async def fill_until_review(
    bot: DiaryBot, api: LocalBotApi, user: int, answers: dict[str, str]
) -> int:
    """Tap Start and answer every question; returns the occurrence id (review screen shown)."""
    prompt = next(
        m
        for m in api.messages(user)
        if any((d or "").startswith("d:s:") for _, d in m.flat_buttons)
    )
    occ = int(next(d for _, d in prompt.flat_buttons if d and d.startswith("d:s:")).split(":")[2])
    api.press(user, prompt.message_id, f"d:s:{occ}", language_code="en")
    for _ in range(30):
        await settle(bot, api)
        row = await bot.rt.db.fetchone(
            "SELECT item FROM diary_sessions s JOIN patients p ON p.id = s.patient_id"
            " WHERE p.user_id = ?",
            (user,),
        )
        assert row is not None
        item = row["item"]
        msg = api.messages(user)[-1]
        if item is None:
            return occ
        if item in ("COMPL", "EVENTS"):
            api.press(user, msg.message_id, f"d:t:{occ}:{item}:NONE", language_code="en")
            await settle(bot, api)
            api.press(user, msg.message_id, f"d:n:{occ}:{item}", language_code="en")
        else:
            api.press(user, msg.message_id, f"d:a:{occ}:{item}:{answers[item]}", language_code="en")
    raise AssertionError("diary did not reach the review screen")


# ----------------------------------------------------------------------------- 1 + 2
async def bench_fanout(prompts: int = 600) -> dict[str, Any]:
    """600 due prompts with the server enforcing 30/s (and 1/s per chat, 20/min per group);
    a patient submits a diary that raises an urgent alert while the fan-out runs."""
    api = LocalBotApi(seed=1)
    await api.start()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            async with running_bot(api, Path(tmp)) as bot:
                await team(bot)
                [alerting] = await enrol(bot, 1, dtime(19, 0), FIRST_USER - 1, "AL")
                users = await enrol(bot, prompts, dtime(20, 0), FIRST_USER, "FO")
                clock = bot.rt.clock
                assert isinstance(clock, FakeClock)
                await clock.advance(minutes=1)  # 19:01: the alerting patient's diary is open
                await settle(bot, api)
                occ = await fill_until_review(
                    bot, api, alerting, {**QUIET, "BLEED": "3", "BLEED_FAINT": "N"}
                )
                review = api.messages(alerting)[-1]
                api.faults = Faults(
                    rate_limit_per_second=30, per_chat_per_second=1, group_per_minute=20
                )
                refused = Refusals()
                logging.getLogger("bot.sender").addHandler(refused)
                arrivals = Arrivals(api)
                stop = asyncio.Event()
                watcher = asyncio.create_task(watch(api, arrivals, stop))
                before = len(api.state.sent_order)
                t0 = time.perf_counter()
                await clock.set(T0 + timedelta(hours=1))  # 20:00: the tick queues 600 prompts
                queued_s = time.perf_counter() - t0
                # a third into the fan-out, the patient taps Submit
                await api.wait_until(
                    lambda: len(api.state.sent_order) - before >= prompts // 3, timeout=60
                )
                coordinator_before = len(api.messages(COORDINATOR))
                left = prompts - (len(api.state.sent_order) - before)
                tap = time.perf_counter()
                api.press(alerting, review.message_id, f"d:x:{occ}", language_code="en")
                alert = await api.wait_for_message(
                    COORDINATOR, after=coordinator_before, timeout=30
                )
                alert_latency = time.perf_counter() - tap
                # the same with an URGENT message queued directly (no diary in between)
                direct = []
                for _ in range(3):
                    await asyncio.sleep(1.1)  # one a second into a private chat
                    n0 = len(api.messages(COORDINATOR))
                    t = time.perf_counter()
                    async with bot.rt.db.transaction() as conn:
                        await messenger.enqueue(
                            conn,
                            bot.rt.now(),
                            COORDINATOR,
                            "urgent (bench)",
                            priority=Priority.URGENT,
                        )
                    bot.rt.wake_sender()
                    await api.wait_for_message(COORDINATOR, after=n0, timeout=30)
                    direct.append(time.perf_counter() - t)
                await settle(bot, api, timeout=120)
                stop.set()
                await watcher
                arrivals.poll()
                mine = [
                    arrivals.times[i]
                    for i, m in enumerate(api.state.sent_order)
                    if i >= before and i < len(arrivals.times) and m.chat_id in set(users)
                ]
                rate = (len(mine) - 1) / (mine[-1] - mine[0])
                every = arrivals.times[before:]
                busiest = max(
                    sum(1 for t in every if s <= t < s + 1.0) for s in every
                )  # messages accepted in the busiest second (all chats)

                return {
                    "fanout_prompts": len(mine),
                    "fanout_rate_per_s": round(rate, 2),
                    "fanout_rate_ratio": round(rate / 30, 3),
                    "fanout_total_s": round(mine[-1] - t0, 2),
                    "fanout_tick_s": round(queued_s, 2),
                    "server_429": api.stats["429"],
                    "fanout_429": sum(1 for c, _ in refused.chats if c != alerting),
                    "reply_burst_429": sum(1 for c, _ in refused.chats if c == alerting),
                    "retry_after_scopes": sorted({scope for _, scope in refused.chats}),
                    "busiest_second": busiest,
                    "sender": dict(bot.sender.stats),
                    "all_messages_rate_per_s": round((len(every) - 1) / (every[-1] - every[0]), 2),
                    "alert_submit_to_coordinator_s": round(alert_latency, 3),
                    "alert_prompts_still_queued": left,
                    "alert_fifo_estimate_s": round(left / 30, 1),
                    "alert_text_ok": "Dripping blood" in (alert.text or ""),
                    "urgent_direct_s": [round(d, 3) for d in direct],
                }
        finally:
            await api.stop()


# ----------------------------------------------------------------------------- 3
async def bench_tap(patients: int = 10, think: float = 1.0) -> dict[str, Any]:
    """Tap -> next question (edit of the diary message arrives), no other traffic.

    Patients tap like people (`think` seconds between a question and the tap), so the
    per-chat pacing (replies may burst 3 in 3 s, then 1/s) never holds a reply back."""
    api = LocalBotApi(seed=2)
    await api.start()
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            async with running_bot(api, Path(tmp)) as bot:
                users = await enrol(bot, patients, dtime(20, 0), FIRST_USER, "TP")
                clock = bot.rt.clock
                assert isinstance(clock, FakeClock)
                await clock.advance(hours=1)
                await settle(bot, api, timeout=60)

                async def patient(user: int) -> None:
                    prompt = next(m for m in api.messages(user) if m.flat_buttons)
                    occ = prompt.flat_buttons[0][1].split(":")[2]  # type: ignore[union-attr]
                    n0 = len(api.messages(user))
                    api.press(user, prompt.message_id, f"d:s:{occ}", language_code="en")
                    diary = await api.wait_for_message(user, after=n0, timeout=10)
                    for _ in range(20):
                        await asyncio.sleep(think)
                        current = api.state.bot_messages[(user, diary.message_id)]
                        data = [d for _, d in current.flat_buttons if d and d.startswith("d:a:")]
                        if not data:
                            return  # review (or a multi-select): the single-answer taps are done
                        item = data[0].split(":")[3]
                        answer = f"d:a:{occ}:{item}:{QUIET[item]}"
                        edits = current.edits
                        t = time.perf_counter()
                        api.press(user, diary.message_id, answer, language_code="en")

                        def edited(m: SentMessage, e: int = edits) -> bool:
                            return m.edits > e

                        await api.wait_for_edit(user, diary.message_id, edited, timeout=10)
                        samples.append(time.perf_counter() - t)

                await asyncio.gather(*(patient(u) for u in users))
        finally:
            await api.stop()
    samples.sort()
    return {
        "tap_samples": len(samples),
        "tap_p50_ms": round(1000 * statistics.median(samples), 1),
        "tap_p95_ms": round(1000 * samples[int(0.95 * (len(samples) - 1))], 1),
        "tap_max_ms": round(1000 * samples[-1], 1),
    }


# ----------------------------------------------------------------------------- 4
async def _drive(api: LocalBotApi, count: int, users: list[int], done: Callable[[], bool]) -> float:
    """Queue `count` text updates at once; seconds until `done()`."""
    t0 = time.perf_counter()
    for n in range(count):
        api.send_text(users[n % len(users)], f"hello {n}", language_code="en")
    await api.wait_until(done, timeout=300)
    return time.perf_counter() - t0


async def bench_updates(count: int = 2000, chats: int = 100, rounds: int = 5) -> dict[str, Any]:
    """The same burst of text updates to a bare PTB echo bot and to the diary bot, alternating
    `rounds` times on one server after a warm-up round (the machine's load drifts; the
    medians are compared).

    Echo: PTB's own polling, the reply sent inside the handler, nothing stored. Diary: enrolled
    patients write; each update is stored and its id recorded, the reply queued in the outbox
    (delivered at <= 30/s, so most replies are still queued when the burst is processed)."""
    api = LocalBotApi(seed=3)
    await api.start()
    echo_rates: list[float] = []
    diary_rates: list[float] = []
    handled = [0]

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"echo: {update.effective_message.text}")
        handled[0] += 1

    try:
        with tempfile.TemporaryDirectory() as tmp:
            users: list[int] = []
            for n in range(rounds + 1):  # round 0 warms both up and is not counted
                app = (
                    ApplicationBuilder()
                    .token("123456:ECHO")
                    .base_url(api.base_url)
                    .base_file_url(api.base_file_url)
                    .build()
                )
                app.add_handler(MessageHandler(filters.TEXT, echo))
                await app.initialize()
                await app.start()
                assert app.updater is not None
                await app.updater.start_polling(poll_interval=0.0, timeout=1)
                handled[0] = 0
                echo_users = [FIRST_USER + n for n in range(chats)]
                echo_s = await _drive(api, count, echo_users, lambda: handled[0] >= count)
                if n:
                    echo_rates.append(count / echo_s)
                await app.updater.stop()
                await app.stop()
                await app.shutdown()
                await api.wait_updates_consumed()

                async with running_bot(api, Path(tmp)) as bot:
                    if not users:
                        users = await enrol(bot, chats, dtime(20, 0), FIRST_USER + 10_000, "UP")
                    await bot.sender.wait_idle()
                    last = api.state._next_update_id - 1 + count

                    def all_handled(b: DiaryBot = bot, t: int = last) -> bool:
                        return b.app.last_update_id >= t

                    diary_s = await _drive(api, count, users, all_handled)
                    if n:
                        diary_rates.append(count / diary_s)
                    await bot.rt.db.execute("DELETE FROM outbox WHERE status = 'queued'")
                await api.wait_updates_consumed()
    finally:
        await api.stop()
    echo_rate, diary_rate = statistics.median(echo_rates), statistics.median(diary_rates)
    return {
        "updates": count,
        "echo_updates_per_s": round(echo_rate, 1),
        "diary_updates_per_s": round(diary_rate, 1),
        "diary_vs_echo": round(diary_rate / echo_rate, 2),
        "echo_rounds": [round(r) for r in echo_rates],
        "diary_rounds": [round(r) for r in diary_rates],
    }


# ----------------------------------------------------------------------------- 5
def bench_startup(subjects: int = 10_000, keep: str | None = None) -> dict[str, Any]:
    """`python -m bot run` on a database with `subjects` subjects (built by
    bench/schedule_10k.py): seconds from spawn until it polls, and its peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(keep) if keep else Path(tmp) / "bench10k.sqlite3"
        built: dict[str, Any] = {}
        if not db.exists():
            out = subprocess.run(
                [
                    sys.executable,
                    "bench/schedule_10k.py",
                    "build",
                    str(db),
                    "--subjects",
                    str(subjects),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            built = json.loads(out.stdout.strip().splitlines()[-1])
        return {**built, **asyncio.run(_startup(db, Path(tmp)))}


async def _startup(db: Path, tmp: Path) -> dict[str, Any]:
    api = LocalBotApi(seed=4)
    await api.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DIARYBOT_"))}
    env.update(
        TELEGRAM_BOT_TOKEN="123456:BENCH",
        TELEGRAM_BASE_URL=api.base_url,
        TELEGRAM_BASE_FILE_URL=api.base_file_url,
        DIARYBOT_DB=str(db),
        DIARYBOT_STUDY=str(_site_study(Path(tmp))),  # `run` refuses the placeholder phone
        PTB_TIMEDELTA="true",
    )
    runs = []
    try:
        for _ in range(2):  # the first start after the build (follow-up plans), then again
            polls, mes = api.stats["call:getUpdates"], api.stats["call:getMe"]
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", env=env, cwd=tmp,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            caught_up: list[float] = []
            log_reader = asyncio.create_task(_watch_log(proc, t0, caught_up))
            try:
                # Polled, not api.wait_until: the server announces a getUpdates call only when
                # its long poll returns, seconds after it was counted.
                def got_me(m: int = mes) -> bool:
                    return api.stats["call:getMe"] > m

                def polled(p: int = polls) -> bool:
                    return api.stats["call:getUpdates"] > p

                def caught(c: list[float] = caught_up) -> bool:
                    return bool(c)

                await _poll_until(got_me, 900)
                opened = time.perf_counter() - t0  # imports, database open + check, bot built
                await _poll_until(polled, 900)
                started = time.perf_counter() - t0  # polling: patients are answered
                # the first catch-up tick ends ("is running" in the log), concurrently with polling
                await _poll_until(caught, 900)
                await asyncio.sleep(2.0)  # a little steady state in the RSS
                peak = _peak_rss_mb(proc.pid)
                runs.append((opened, started, caught_up[0], peak))
            finally:
                log_reader.cancel()
                if proc.returncode is None:
                    proc.terminate()
                    try:
                        await asyncio.wait_for(proc.wait(), 30)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
    finally:
        await api.stop()
    return {
        "startup_first_getme_s": round(runs[0][0], 2),
        "startup_first_polling_s": round(runs[0][1], 2),
        "startup_again_getme_s": round(runs[1][0], 2),
        "startup_first_caught_up_s": round(runs[0][2], 2),
        "startup_again_polling_s": round(runs[1][1], 2),
        "startup_again_caught_up_s": round(runs[1][2], 2),
        "startup_peak_rss_mb": [r[3] for r in runs],
    }


async def _watch_log(proc: asyncio.subprocess.Process, t0: float, caught_up: list[float]) -> None:
    """Read the bot's log (so its pipe never fills); note when the catch-up tick has ended."""
    assert proc.stderr is not None
    async for line in proc.stderr:
        if not caught_up and b" is running" in line:
            caught_up.append(time.perf_counter() - t0)


async def _poll_until(predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("the bot did not start")
        await asyncio.sleep(0.005)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# ----------------------------------------------------------------------------- main
def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bot").setLevel(logging.ERROR)
    logging.getLogger("bot.sender").setLevel(logging.WARNING)  # the 429 warnings are counted
    logging.getLogger("httpx").setLevel(logging.WARNING)
    p = argparse.ArgumentParser(description="Delivery benchmarks (loopback Bot API).")
    p.add_argument("which", nargs="*", default=["fanout", "tap", "updates", "startup"],
                   choices=["fanout", "tap", "updates", "startup"])  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.add_argument("--subjects", type=int, default=10_000, help="startup: subjects")
    p.add_argument("--keep", metavar="DB", help="startup: keep/reuse the 10k database here")
    args = p.parse_args()
    results: dict[str, Any] = {}
    for which in args.which:
        if which == "fanout":
            results.update(asyncio.run(bench_fanout()))
        elif which == "tap":
            results.update(asyncio.run(bench_tap()))
        elif which == "updates":
            results.update(asyncio.run(bench_updates()))
        elif which == "startup":
            results.update(bench_startup(args.subjects, args.keep))
        if not args.json:
            print(f"[{which} done]", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(results))
    else:
        width = max(len(k) for k in results)
        for key, value in results.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _site_study(folder: Path) -> Path:
    """The packaged study with a site's own contact phone, as `diarybot run` requires."""
    path = folder / "site-study.toml"
    text = Path(load_study().source).read_text(encoding="utf-8")
    path.write_text(text.replace(SHIPPED_PLACEHOLDER_PHONE, "+86 21 5555 0100"), encoding="utf-8")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
