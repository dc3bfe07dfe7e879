"""Wires this feature into the bot (handlers, scheduler hooks, submit hooks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import DiaryBot


def install(bot: DiaryBot) -> None:
    return None
