"""kill -9 at random moments: nothing lost, duplicates counted.

The real bot runs in a child process (`python -m bot run`, real clock) against a loopback
Bot-API server in this process. Patients are enrolled with a diary window open *now*, so the
child's first tick fans out their prompts; some patients fill in their diary while the child is
killed (SIGKILL) ten times at random moments and restarted. Then: every prompt arrived at
least once, every diary is complete with each answer stored once, nothing failed or is left
queued, the database and its audit chain are intact. Duplicates (a message Telegram accepted
whose `sent` was not yet committed when the process died) are counted and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import SystemClock
from bot.domain.study import Study
from bot.localapi import LocalBotApi, SentMessage
from bot.services.enrolment import enroll, link_chat
from bot.services.runtime import Runtime
from storage import audit
from storage.db import Database
from tests.diary_helpers import QUIET
from tests.sandbox_support import site_study_file

PATIENTS = 150
PLAYERS = 12
TAP_EVERY = 0.55  # seconds between one player's taps at least
KILLS = 10
FIRST_USER = 70000
TOKEN = "123456:CRASH-TEST"
PROMPT_TEXT = "Time for today's diary"


def _first_text(m: SentMessage) -> str:
    return (m.history[0] if m.history else m.text) or ""


def _timezone_with_daytime(now: datetime) -> str:
    """A zone where it is between 01:00 and 22:00, so "ten minutes ago" is today."""
    for tz in ("UTC", "Asia/Shanghai", "America/New_York", "Pacific/Auckland"):
        if 1 <= now.astimezone(ZoneInfo(tz)).hour < 22:
            return tz
    raise AssertionError("no suitable time zone")  # pragma: no cover


async def _enrol(db_path: Path, study: Study) -> None:
    """Patients on Day 0 whose prompt time was ten minutes ago: the prompt is due now."""
    db = await Database.open(db_path)
    rt = Runtime(db=db, study=study, clock=SystemClock())
    try:
        now = rt.now()
        tz = _timezone_with_daytime(now)
        local = now.astimezone(ZoneInfo(tz)) - timedelta(minutes=10)
        prompt = local.time().replace(second=0, microsecond=0)
        today: date = rt.local_today(tz)
        for n in range(PATIENTS):
            user = FIRST_USER + n
            result = await enroll(rt, f"CR-{n:04d}", today, "en", tz, prompt)
            assert (await link_chat(rt, user, user, result.code)).status == "ok"
    finally:
        await db.close()


@dataclass
class World:
    api: LocalBotApi
    db_path: Path
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    presses: Counter[int] = field(default_factory=Counter)
    last_press: dict[int, float] = field(default_factory=dict)  # user → time.monotonic()
    released: int = 0  # players allowed to start their diary (a few more for each child)

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.db_path, timeout=5)
        try:
            return list(conn.execute(sql, params).fetchall())
        finally:
            conn.close()

    def prompts(self, user: int) -> int:
        """Prompt messages in the chat (as first sent: a diary may have edited one since)."""
        return sum(1 for m in self.api.messages(user) if PROMPT_TEXT in _first_text(m))

    def prompted(self, user: int) -> bool:
        return self.prompts(user) > 0


def _state(w: World, user: int) -> tuple[object, ...]:
    """(occurrence id, its status, session occurrence, item asked, its answer) from SQLite."""
    rows = w.read(
        "SELECT o.id, o.status, s.occurrence_id, s.item,"
        " (SELECT value FROM answers a WHERE a.occurrence_id = o.id AND a.item = s.item)"
        " FROM patients p JOIN occurrences o ON o.patient_id = p.id AND o.study_day = 0"
        " LEFT JOIN diary_sessions s ON s.patient_id = p.id WHERE p.user_id = ?",
        (user,),
    )
    return tuple(rows[0])


def _under_way(w: World, users: list[int], players: list[asyncio.Task[None]]) -> int:
    """Diaries begun (a tap sent) and not yet completed."""
    return sum(1 for u, p in zip(users, players, strict=False) if w.presses[u] and not p.done())


async def _play(w: World, user: int, index: int) -> None:
    """A patient tapping through the diary as soon as the stored state allows the next tap.

    Each tap waits until the bot has *stored* its effect, however many crashes that takes,
    and is never repeated: a tap lost by a crash would stall this patient and fail the test.
    Players start in turns (`World.released`), so diaries are under way in later children too,
    however fast the machine is.
    """
    while not w.stop.is_set():
        if index >= w.released or not w.prompted(user):
            await asyncio.sleep(0.05)
            continue
        state = _state(w, user)
        occ, status, session_occ, item, events = state
        if status == "completed":
            return
        message = next(
            m
            for m in reversed(w.api.messages(user))
            if any((d or "").startswith("d:") for _, d in m.flat_buttons)
        )
        if session_occ is None:
            data = f"d:s:{occ}"
        elif item is None:
            data = f"d:x:{occ}"
        elif item in ("COMPL", "EVENTS"):
            data = f"d:n:{occ}:{item}" if events == "NONE" else f"d:t:{occ}:{item}:NONE"
        else:
            data = f"d:a:{occ}:{item}:{QUIET[str(item)]}"
        # Not faster than two taps a second, as people tap: the bot's per-user flood limit
        # (issue 11: five at once, then two a second) drops what comes faster.
        await asyncio.sleep(max(0.0, w.last_press.get(user, 0.0) + TAP_EVERY - time.monotonic()))
        w.last_press[user] = time.monotonic()
        w.api.press(user, message.message_id, data, language_code="en")
        w.presses[user] += 1
        await w.api.wait_until(
            lambda s=state: w.stop.is_set() or _state(w, user) != s,  # type: ignore[misc]
            timeout=60,
        )


async def _child(w: World, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DIARYBOT_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_BASE_URL=w.api.base_url,
        TELEGRAM_BASE_FILE_URL=w.api.base_file_url,
        DIARYBOT_DB=str(w.db_path),
        DIARYBOT_STUDY=str(site_study_file(w.db_path.parent)),  # `run` needs the site's phone
        DIARYBOT_AUDIT_KEY=os.environ["DIARYBOT_AUDIT_KEY"],  # the key the parent wrote with
        PTB_TIMEDELTA="true",
    )
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            env=env,
            cwd=w.db_path.parent,
            stdout=out,
            stderr=out,
        )


async def _until(
    predicate: Callable[[], bool],
    timeout: float,  # noqa: ASYNC109
    what: str,
    explain: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{explain()}")
        await asyncio.sleep(0.02)


def _explain(w: World, users: list[int], log: Path) -> str:
    """What is missing, what is queued, and the end of the bot's log."""
    missing = [u for u in users if not w.prompted(u)]
    players = {u: _state(w, u) for u in users[:PLAYERS]}
    queued = w.read(
        "SELECT id, chat_id, kind, priority, attempts, last_error, not_before FROM outbox"
        " WHERE status = 'queued' ORDER BY id LIMIT 20"
    )
    lines = [
        line
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
        if "httpx" not in line
    ]
    return (
        f"no prompt: {missing[:20]}\nplayers: {players}\nqueued: {queued}\n"
        f"update ids: {w.read('SELECT value FROM meta WHERE key = ?', ('last_update_id',))},"
        f" pending on the server: {w.api.pending_updates}\nlog:\n" + "\n".join(lines[-40:])
    )


def _append_report(report: dict[str, object]) -> None:
    """CRASH_REPORT=file collects one JSON line per run (docs/delivery.md quotes them)."""
    out = os.environ.get("CRASH_REPORT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(report) + "\n")


async def test_kill_9_ten_times_loses_nothing(tmp_path: Path, study: Study) -> None:
    seed = int(os.environ.get("CRASH_SEED", "20261201"))
    rng = random.Random(seed)
    db_path = tmp_path / "crash.sqlite3"
    await _enrol(db_path, study)
    api = LocalBotApi(seed=seed)
    await api.start()
    w = World(api, db_path)
    log = tmp_path / "child.log"
    users = [FIRST_USER + n for n in range(PATIENTS)]
    players = [asyncio.create_task(_play(w, u, i)) for i, u in enumerate(users[:PLAYERS])]
    proc: asyncio.subprocess.Process | None = None
    # at each kill: (prompts delivered, diaries under way, diaries completed)
    kill_points: list[tuple[int, int, int]] = []
    started = time.monotonic()
    try:
        for k in range(KILLS):
            calls = api.stats["call:getMe"]
            w.released = -(-(k + 1) * PLAYERS // KILLS)  # ceil: all released by the last kill
            proc = await _child(w, log)

            def child_started(c: int = calls) -> bool:
                return api.stats["call:getMe"] > c

            await _until(child_started, 90, "the child to start")
            if k % 2:
                # mid-diary: as soon as a diary is under way, after a random few taps' time
                with contextlib.suppress(AssertionError):
                    await _until(lambda: _under_way(w, users, players) > 0, 30, "a diary")
                await asyncio.sleep(rng.uniform(0.0, 0.05))
            else:
                await asyncio.sleep(rng.uniform(0.3, 1.8))  # a random moment, not a schedule
            proc.kill()  # SIGKILL
            await proc.wait()
            done = sum(1 for p in players if p.done())
            prompted = sum(w.prompted(u) for u in users)
            kill_points.append((prompted, _under_way(w, users, players), done))
        w.released = PLAYERS
        polls = api.stats["call:getUpdates"]
        proc = await _child(w, log)
        await _until(lambda: api.stats["call:getUpdates"] > polls, 90, "the last child to run")
        await _until(
            lambda: all(w.prompted(u) for u in users) and all(p.done() for p in players),
            120,
            "every prompt and every diary",
            lambda: _explain(w, users, log),
        )
        for player in players:
            player.result()  # a player that gave up (a lost tap) fails the test here
        await _until(
            lambda: not w.read("SELECT 1 FROM outbox WHERE status = 'queued' LIMIT 1"),
            60,
            "the outbox to drain",
        )
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 60) == 0, log.read_text()[-3000:]
    finally:
        w.stop.set()
        for task in players:
            task.cancel()
        await asyncio.gather(*players, return_exceptions=True)
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await api.stop()
    elapsed = time.monotonic() - started

    # the kills fell during the fan-out and during the diaries
    assert any(p < PATIENTS for p, _, _ in kill_points), kill_points
    assert any(u > 0 for _, u, _ in kill_points), kill_points

    # nothing lost: every prompt delivered, every diary complete with each answer stored once
    assert all(w.prompted(u) for u in users)
    statuses = dict(
        w.read(
            "SELECT p.user_id, o.status FROM occurrences o JOIN patients p ON p.id ="
            " o.patient_id WHERE o.study_day = 0"
        )
    )
    assert all(statuses[u] == "completed" for u in users[:PLAYERS])
    assert all(statuses[u] == "prompted" for u in users[PLAYERS:])
    answers = w.read(
        "SELECT p.user_id, a.item, a.value, a.submitted_at FROM answers a"
        " JOIN occurrences o ON o.id = a.occurrence_id JOIN patients p ON p.id = o.patient_id"
    )
    for user in users[:PLAYERS]:
        mine = {item: value for u, item, value, sub in answers if u == user and sub}
        assert mine == {k: QUIET[k] for k in mine} and set(mine) >= {"BLEED", "PAIN", "EVENTS"}
    entries = w.read(
        "SELECT action, subject, entity, COUNT(*) FROM audit WHERE action LIKE 'answer%'"
        " GROUP BY action, subject, entity"
    )
    assert {e[0] for e in entries} == {"answer"} and all(e[3] == 1 for e in entries)
    assert len(entries) == sum(1 for *_, sub in answers if sub)
    assert not w.read("SELECT id FROM outbox WHERE status != 'sent'")
    # and nothing lost on the patients' side: the thank-you is queued in the submit's own
    # transaction, so every completed diary got one, however the kills fell
    for user in users[:PLAYERS]:
        texts = [m.text or "" for m in api.messages(user)]
        assert any("Your diary has been saved" in t for t in texts), (user, texts[-3:])

    # intact: the database and the audit chain
    db = await Database.open(db_path)
    try:
        chain = await audit.verify(db.conn)
    finally:
        await db.close()
    assert chain.ok and chain.checked > PATIENTS, chain

    # duplicates: messages Telegram accepted more often than the outbox recorded them
    recorded = w.read(
        "SELECT chat_id, message_id FROM outbox WHERE status = 'sent' AND (kind = 'send'"
        " OR (kind = 'edit' AND message_id IS NOT json_extract(payload, '$.message_id')))"
    )
    on_server = {(m.chat_id, m.message_id) for m in api.state.sent_order}
    assert set(recorded) <= on_server  # every recorded id is a real message
    duplicates = len(api.state.sent_order) - len(recorded)
    prompt_copies = Counter(w.prompts(u) for u in users)
    report = {
        "seed": seed,
        "kills": KILLS,
        "patients": PATIENTS,
        "diaries": PLAYERS,
        "messages_on_server": len(api.state.sent_order),
        "messages_recorded": len(recorded),
        "duplicates": duplicates,
        "prompt_duplicates": sum((n - 1) * c for n, c in prompt_copies.items()),
        "taps": sum(w.presses.values()),
        "kill_points": kill_points,
        "seconds": round(elapsed, 1),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print("crash test:", json.dumps(report))
    _append_report(report)
    assert duplicates >= 0
    assert duplicates <= KILLS * 16  # at most the sends in flight at each kill
