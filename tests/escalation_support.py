"""Shared set-up for the escalation tests: a harness with fast pacing, staff, a group, diaries."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import AsyncIterator
from datetime import date

from bot.cli import cmd_staff
from bot.domain.study import Study
from bot.localapi import SentMessage
from bot.sender import Pacing
from tests.conftest import T0
from tests.harness import Harness, Player, fill_diary, running_harness

# Tests are about alerts, not flood control: let the sender go as fast as it can.
FAST = Pacing(private_interval=0.0, private_burst=1000, group_interval=0.0)

GROUP = -100500
ZH_COORD = 1001
EN_COORD = 1002
INVESTIGATOR = 1003
ADMIN = 1004

# Nothing to report (Day 0–14: the fever question is asked).
QUIET = {
    "BLEED": "0",
    "URGENCY": "1",
    "LEAK": "0",
    "PAIN": "2",
    "BM": "2",
    "TENESMUS": "0",
    "FEVER": "N",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}


@contextlib.asynccontextmanager
async def fast_harness(tmp_path, study: Study) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    async with running_harness(tmp_path, study, start=T0, pacing=FAST) as h:
        yield h


async def staff_cli(h: Harness, **kwargs: object) -> None:
    """`diarybot staff …` through the real command function (output swallowed)."""
    with contextlib.redirect_stdout(io.StringIO()):
        await cmd_staff(argparse.Namespace(**kwargs), h.rt)


async def team(h: Harness, *, group: bool = True) -> None:
    """Two coordinators (zh, en), an investigator, an admin and (optionally) the group."""
    for tid, role, name, lang in (
        (ZH_COORD, "coordinator", "Wang Fang", "zh_Hans"),
        (EN_COORD, "coordinator", "Anna Smith", "en"),
        (INVESTIGATOR, "investigator", "Dr Li", "en"),
        (ADMIN, "admin", "Sys Admin", "en"),
    ):
        await staff_cli(h, staff_command="add", telegram_id=tid, role=role, name=name, lang=lang)
    if group:
        await staff_cli(h, staff_command="group", chat_id=GROUP)


async def day0_patient(h: Harness, lang: str = "zh_Hans", user_id: int = 501) -> Player:
    """A patient injected today (Nov 30): the diary at 20:00 Shanghai is Day 0."""
    p = await h.patient(user_id, "RP-001", lang=lang, injection=date(2026, 11, 30))
    await h.advance(hours=1)  # 20:00 Shanghai: the Day 0 prompt
    return p


async def submit(p: Player, **answers: str) -> None:
    await fill_diary(p, {**QUIET, **answers})


def alert_messages(h: Harness, chat_id: int) -> list[SentMessage]:
    """The bot's messages in a chat that show an alert (every state has an al: button)."""
    return [
        m for m in h.api.messages(chat_id) if any((d or "").startswith("al:") for d in datas(m))
    ]


def datas(m: SentMessage) -> list[str]:
    return [d or "" for _, d in m.flat_buttons]


async def actions(h: Harness, prefix: str = "alert_") -> list[str]:
    rows = await h.rows("SELECT action FROM audit WHERE action LIKE ? ORDER BY id", (prefix + "%",))
    return [r["action"] for r in rows]
