"""End-to-end harness: the real bot (DiaryBot, real python-telegram-bot, real HTTP) against the
loopback Bot API server, with a fake clock. Tests play patients and coordinators.

Nothing here sleeps on real time for a schedule: time moves only through `clock.advance`, which
runs the scheduler's tick. Waiting is for *work* (an update processed, the outbox drained),
bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from bot.app import DiaryBot
from bot.clock import FakeClock
from bot.delivery.inbound import NO_LIMITS, InboundLimits
from bot.domain.study import Study
from bot.localapi import LocalBotApi, SentMessage
from bot.services.enrolment import enroll
from storage import repo


@dataclass
class Harness:
    api: LocalBotApi
    bot: DiaryBot
    clock: FakeClock
    study: Study
    db_path: Path
    players: dict[int, Player] = field(default_factory=dict)

    @property
    def rt(self) -> Any:
        return self.bot.rt

    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until every queued update is handled and every queued message is delivered."""
        deadline = time.monotonic() + timeout
        target = self.api.state._next_update_id - 1
        while self.bot.app.last_update_id < target:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"bot did not process update {target} (at {self.bot.app.last_update_id})"
                )
            await asyncio.sleep(0.005)
        await self.bot.sender.wait_idle(timeout=max(0.1, deadline - time.monotonic()))

    async def advance(self, **kwargs: float) -> None:
        """Move the study clock; the scheduler ticks; wait for what it sent."""
        await self.clock.advance(timedelta(**kwargs))
        await self.settle()

    async def set_time(self, when: datetime) -> None:
        await self.clock.set(when)
        await self.settle()

    async def enroll(
        self,
        subject: str = "RP-001",
        injection: date = date(2026, 12, 1),
        lang: str | None = "zh_Hans",
        tz: str = "Asia/Shanghai",
        prompt: dtime = dtime(20, 0),
    ) -> str:
        result = await enroll(self.rt, subject, injection, lang, tz, prompt)
        return result.code

    def player(self, user_id: int, language_code: str | None = "zh-hans") -> Player:
        if user_id not in self.players:
            self.players[user_id] = Player(self, user_id, language_code)
        return self.players[user_id]

    async def patient(
        self, user_id: int = 501, subject: str = "RP-001", lang: str | None = "zh_Hans", **kw: Any
    ) -> Player:
        """Enrol a subject and link a chat to it; returns the playing patient."""
        code = await self.enroll(subject, lang=lang, **kw)
        p = self.player(user_id, "zh-hans" if lang != "en" else "en")
        await p.send(f"/start {code}")
        return p

    async def db_patient(self, subject: str) -> repo.Patient:
        patient = await repo.patient_by_subject(self.rt.db.conn, subject)
        assert patient is not None
        return patient

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return await self.rt.db.fetchall(sql, params)


@dataclass
class Player:
    h: Harness
    user_id: int
    language_code: str | None

    @property
    def chat_id(self) -> int:
        return self.user_id

    @property
    def messages(self) -> list[SentMessage]:
        return self.h.api.messages(self.chat_id)

    @property
    def last(self) -> SentMessage:
        msgs = self.messages
        assert msgs, f"no message in chat {self.chat_id}"
        return msgs[-1]

    @property
    def last_text(self) -> str:
        """The text of the last message in the chat (which must have one)."""
        text = self.last.text
        assert text is not None, f"the last message in chat {self.chat_id} has no text"
        return text

    def texts(self) -> list[str]:
        return [m.text or "" for m in self.messages]

    def last_with_buttons(self) -> SentMessage:
        for m in reversed(self.messages):
            if m.buttons and not m.deleted:
                return m
        raise AssertionError(f"no message with buttons in chat {self.chat_id}: {self.texts()}")

    async def send(self, text: str) -> None:
        self.h.api.send_text(self.user_id, text, language_code=self.language_code)
        await self.h.settle()

    async def tap(self, label: str, message: SentMessage | None = None) -> None:
        """Press the button whose label contains `label` on the latest message with buttons."""
        msg = message or self.last_with_buttons()
        self.h.api.press(
            self.user_id, msg.message_id, msg.button_data(label), language_code=self.language_code
        )
        await self.h.settle()

    async def press_data(self, data: str, message: SentMessage | None = None) -> None:
        """Press with arbitrary (possibly forged) callback data."""
        msg = message or self.last
        self.h.api.press(self.user_id, msg.message_id, data, language_code=self.language_code)
        await self.h.settle()

    def toasts(self) -> list[str]:
        return [a.get("text") or "" for a in self.h.api.callback_answers()]

    @property
    def last_toast(self) -> str:
        answers = self.toasts()
        return answers[-1] if answers else ""


async def fill_diary(player: Player, answers: dict[str, str], *, submit: bool = True) -> None:
    """Open the patient's diary with /diary and answer every question from `answers`.

    `answers` maps item codes to what the patient gives: an option code (single), codes joined
    by "," (multi), the number (scale/count/number) or the text (text). Which question is being
    asked is read from the stored diary session, so the order and follow-ups come from the
    study definition, as for a real patient. Taps and typing go through the real bot.
    """
    h = player.h
    await player.send("/diary")
    for step in range(40):
        rows = await h.rows(
            "SELECT s.occurrence_id, s.item FROM diary_sessions s JOIN patients p"
            " ON p.id = s.patient_id WHERE p.user_id = ?",
            (player.user_id,),
        )
        if not rows:
            assert step > 0, f"no diary is open: {player.last.text}"
            return  # submitted
        occ, code = rows[0]["occurrence_id"], rows[0]["item"]
        msg = player.last_with_buttons()
        if code is None:
            if not submit:
                return
            await player.press_data(f"d:x:{occ}", msg)
            continue
        assert code in answers, f"the diary asks {code}, not in {sorted(answers)}"
        item = h.study.item(code)
        if item.kind == "multi":
            for option in answers[code].split(","):
                await player.press_data(f"d:t:{occ}:{code}:{option}", player.last_with_buttons())
            await player.press_data(f"d:n:{occ}:{code}", player.last_with_buttons())
        elif item.kind in ("number", "text"):
            await player.send(answers[code])
        else:
            await player.press_data(f"d:a:{occ}:{code}:{answers[code]}", msg)
    raise AssertionError("the diary did not finish in 40 steps")


@contextlib.asynccontextmanager
async def running_harness(
    tmp_path: Path,
    study: Study,
    *,
    start: datetime,
    api: LocalBotApi | None = None,
    pacing: Any = None,
    read_timeout: float = 15,
    inbound: InboundLimits = NO_LIMITS,
) -> AsyncIterator[Harness]:
    """The real bot against a fresh loopback Bot API server and database, stopped afterwards."""
    api = api or LocalBotApi()
    await api.start()
    clock = FakeClock(start)
    db_path = tmp_path / "diary.sqlite3"
    bot = await DiaryBot.create(
        db_path=db_path,
        study=study,
        clock=clock,
        token="123456:TEST-TOKEN",
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        pacing=pacing,
        read_timeout=read_timeout,
        inbound=inbound,
    )
    await bot.start(poll_timeout=1)
    h = Harness(api=api, bot=bot, clock=clock, study=study, db_path=db_path)
    try:
        yield h
    finally:
        await h.bot.stop()
        await api.stop()
