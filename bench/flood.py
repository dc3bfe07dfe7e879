"""A flood from one stranger while a 24-patient evening runs (issue 11 §1).

    python -m bench.flood                 # the quiet evening, then the same with the flood
    python -m bench.flood --json          # one JSON object

Both runs: 24 patients get their 20:00 prompt and tap through their diary like people (one
tap a second), always on the latest message that carries diary buttons (after an urgent answer
the safety text is its own message and the diary goes on in a new message below it); one of
them reports dripping blood, which raises the urgent alert to the coordinator at that answer
(before Submit). The server enforces Telegram's limits (30/s, 1/s per private chat, 20/min
per group), the bot runs with its real pacing and its real inbound limits.

The flood run adds a stranger who sends `/alerts` 1,000 times at once when the prompts go out,
and again every `--every` seconds until the evening is over. Measured for each run: the
patients' tap → next question (p50/p95/max), the urgent answer's tap → the alert card in the
coordinator's chat; for the flood: updates sent, dropped by the flood guard, messages the
stranger got, and what the flood added to the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import time as dtime
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "true")

from bench.common import COORDINATOR, FIRST_USER, QUIET, T0, enrol, running_bot, settle, team
from bot.clock import FakeClock
from bot.delivery.inbound import FloodGuard, InboundLimits
from bot.delivery.pacing import Pacing
from bot.localapi import Faults, LocalBotApi, SentMessage

PATIENTS = 24
BURST = 1000
STRANGER = 6_660_000
URGENT_ITEM = "BLEED"  # the answer that raises the urgent alert (before Submit)
ALERTING = {**QUIET, URGENT_ITEM: "3", "BLEED_FAINT": "N"}
# A diary question's buttons: answer, tick, next (multi-select), submit.
DIARY_BUTTONS = ("d:a:", "d:t:", "d:n:", "d:x:")


def _diary_data(message: SentMessage) -> list[str]:
    return [str(d) for _, d in message.flat_buttons if d and str(d).startswith(DIARY_BUTTONS)]


def _screen(api: LocalBotApi, user: int) -> tuple[int, int] | None:
    """The patient's current diary screen: (message id, edits) of the latest message that
    carries diary buttons. Since the safety text is its own message, the diary can continue
    in a new message below it; a patient always taps the latest one."""
    for message in reversed(api.messages(user)):
        if not message.deleted and _diary_data(message):
            return message.message_id, message.edits
    return None


async def _next_screen(api: LocalBotApi, user: int, before: tuple[int, int] | None) -> None:
    """Wait until the diary shows its next screen: the same message edited, or a new one."""
    await api.wait_until(lambda: _screen(api, user) not in (None, before), timeout=60)


async def _patient(
    api: LocalBotApi,
    user: int,
    answers: dict[str, str],
    think: float,
    taps: list[float],
    alert: list[float],
    submitted: list[int],
) -> None:
    """Start, answer every question (`think` s apart), submit; time each answer's next
    question, and for an alerting diary the urgent answer's tap → the coordinator's alert."""
    prompt = await api.wait_for_message(user, lambda m: bool(m.flat_buttons), after=0, timeout=60)
    occ = str(prompt.flat_buttons[0][1]).split(":")[2]
    api.press(user, prompt.message_id, f"d:s:{occ}", language_code="en")
    await _next_screen(api, user, None)
    alert_wait: asyncio.Task[None] | None = None
    for _ in range(40):
        await asyncio.sleep(think)
        screen = _screen(api, user)
        assert screen is not None
        message_id = screen[0]
        data = _diary_data(api.state.bot_messages[(user, message_id)])
        single = [d for d in data if d.startswith("d:a:")]
        toggles = [d for d in data if d.startswith("d:t:")]
        submit = [d for d in data if d.startswith("d:x:")]
        if single:
            item = single[0].split(":")[3]
            cards = len(api.messages(COORDINATOR))
            t = time.perf_counter()
            api.press(user, message_id, f"d:a:{occ}:{item}:{answers[item]}", language_code="en")
            if answers is ALERTING and item == URGENT_ITEM:
                alert_wait = asyncio.create_task(_alert_card(api, cards, t, alert))
            await _next_screen(api, user, screen)
            taps.append(time.perf_counter() - t)
        elif toggles:
            item = toggles[0].split(":")[3]
            api.press(user, message_id, f"d:t:{occ}:{item}:{answers[item]}", language_code="en")
            await _next_screen(api, user, screen)
            await asyncio.sleep(think)
            screen = _screen(api, user)
            assert screen is not None
            t = time.perf_counter()
            api.press(user, screen[0], f"d:n:{occ}:{item}", language_code="en")
            await _next_screen(api, user, screen)
            taps.append(time.perf_counter() - t)
        elif submit:
            edits = api.state.bot_messages[(user, message_id)].edits

            def edited(m: SentMessage, e: int = edits) -> bool:
                return m.edits > e

            api.press(user, message_id, submit[0], language_code="en")
            # the review turns into the thank-you (its buttons go)
            await api.wait_for_edit(user, message_id, edited, timeout=60)
            submitted.append(user)
            if alert_wait is not None:
                await alert_wait
            return
        else:
            break
    raise AssertionError(f"patient {user}: the diary did not end")


async def _alert_card(api: LocalBotApi, before: int, t: float, alert: list[float]) -> None:
    """From the urgent answer's tap (at `t`, the coordinator's chat holding `before`
    messages) until the alert card is in the coordinator's chat."""
    await api.wait_for_message(
        COORDINATOR,
        lambda m: any(str(d).startswith("al:ack:") for _, d in m.flat_buttons),
        after=before,
        timeout=60,
    )
    alert.append(time.perf_counter() - t)


async def evening(
    flood: bool,
    think: float = 1.0,
    every: float = 5.0,
    strict: bool = False,
    patients: int = PATIENTS,
    burst: int = BURST,
    pacing: Pacing | None = None,
    inbound: InboundLimits | None = None,
    guard_time: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """One evening (`flood`: with the stranger). `patients`, `burst`, `pacing`, `inbound` and
    `guard_time` (the flood guard's clock) are for the smoke test (tests/test_bench_smoke.py);
    the benchmark keeps the defaults."""
    api = LocalBotApi(seed=3)
    await api.start()
    taps: list[float] = []
    alert: list[float] = []
    submitted: list[int] = []
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            async with running_bot(api, Path(tmp), pacing=pacing, inbound=inbound) as bot:
                await team(bot)
                users = await enrol(bot, patients, dtime(20, 0), FIRST_USER, "EV")
                clock = bot.rt.clock
                assert isinstance(clock, FakeClock)
                guard = bot.hooks.flood_guard
                assert isinstance(guard, FloodGuard)
                if guard_time is not None:
                    guard.monotonic = guard_time
                api.faults = Faults(
                    rate_limit_per_second=30,
                    per_chat_per_second=1 if strict else None,
                    group_per_minute=20,
                )
                audit0 = await bot.rt.db.scalar("SELECT COUNT(*) FROM audit")
                outbox0 = await bot.rt.db.scalar("SELECT COUNT(*) FROM outbox")
                sent = 0
                done = asyncio.Event()

                async def flooder() -> None:
                    nonlocal sent
                    while not done.is_set():
                        for _ in range(burst):
                            api.send_text(STRANGER, "/alerts", language_code="en")
                        sent += burst
                        try:
                            await asyncio.wait_for(done.wait(), every)
                        except TimeoutError:
                            pass

                await clock.set(T0 + timedelta(hours=1))  # 20:00 in Shanghai: the prompts
                task = asyncio.create_task(flooder()) if flood else None
                t0 = time.perf_counter()
                await asyncio.gather(
                    *(
                        _patient(
                            api, u, ALERTING if i == 0 else QUIET, think, taps, alert, submitted
                        )
                        for i, u in enumerate(users)
                    )
                )
                evening_s = time.perf_counter() - t0
                done.set()
                if task is not None:
                    await task
                await settle(bot, api, timeout=120)
                audit1 = await bot.rt.db.scalar("SELECT COUNT(*) FROM audit")
                outbox1 = await bot.rt.db.scalar("SELECT COUNT(*) FROM outbox")
                completed = await bot.rt.db.scalar(
                    "SELECT COUNT(*) FROM occurrences WHERE status = 'completed'"
                )
                out = {
                    "evening_s": round(evening_s, 1),
                    "submitted": len(submitted),
                    "diaries_completed": completed,
                    "alert_urgent_tap_to_coordinator_s": round(alert[0], 3),
                    "server_429": api.stats["429"],
                }
                if flood:
                    counted = await bot.rt.db.scalar(
                        "SELECT COALESCE(SUM(count), 0) FROM stranger_activity"
                    )
                    out.update(
                        flood_updates=sent,
                        flood_dropped=guard.stats["dropped"],
                        flood_handled_counted=counted,
                        flood_messages_to_stranger=len(api.messages(STRANGER)),
                        flood_slow_down=guard.stats["slow_down"],
                        audit_rows_added=audit1 - audit0,
                        outbox_rows_added=outbox1 - outbox0,
                    )
                else:
                    out.update(
                        audit_rows_added=audit1 - audit0, outbox_rows_added=outbox1 - outbox0
                    )
        finally:
            await api.stop()
    taps.sort()
    out.update(
        tap_samples=len(taps),
        tap_p50_ms=round(1000 * statistics.median(taps), 1),
        tap_p95_ms=round(1000 * taps[int(0.95 * (len(taps) - 1))], 1),
        tap_max_ms=round(1000 * taps[-1], 1),
    )
    return out


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bot").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    p = argparse.ArgumentParser(description="A stranger's flood during a 24-patient evening.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--every", type=float, default=5.0, help="seconds between flood bursts")
    p.add_argument("--rounds", type=int, default=2, help="quiet/flood pairs (medians reported)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="the server also refuses a 2nd message within a second into one chat (stricter"
        " than Telegram: reply bursts then meet 429s, which dominate the tap times)",
    )
    args = p.parse_args()
    quiet: list[dict[str, Any]] = []
    flooded: list[dict[str, Any]] = []
    for n in range(args.rounds):  # alternating, so both see the same machine
        quiet.append(asyncio.run(evening(False, strict=args.strict)))
        print(f"[quiet {n + 1} done]", file=sys.stderr, flush=True)
        flooded.append(asyncio.run(evening(True, every=args.every, strict=args.strict)))
        print(f"[flood {n + 1} done]", file=sys.stderr, flush=True)
    results: dict[str, Any] = {}
    for name, runs in (("quiet", quiet), ("flood_run", flooded)):
        for key in runs[0]:
            values = [r[key] for r in runs]
            results[f"{name}_{key}"] = statistics.median(values) if len(values) > 1 else values[0]
            if key in ("tap_p95_ms", "alert_urgent_tap_to_coordinator_s"):
                results[f"{name}_{key}_runs"] = values
    results["tap_p95_ratio"] = round(
        results["flood_run_tap_p95_ms"] / results["quiet_tap_p95_ms"], 2
    )
    results["alert_ratio"] = round(
        results["flood_run_alert_urgent_tap_to_coordinator_s"]
        / results["quiet_alert_urgent_tap_to_coordinator_s"],
        2,
    )
    results["load_avg_1min"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(results))
    else:
        width = max(len(k) for k in results)
        for key, value in results.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
