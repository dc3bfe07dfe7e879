"""Optional parts of the bot that plug into DiaryBot: each issue's feature installs itself here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import DiaryBot


def install(bot: DiaryBot) -> None:
    """Wire features into the bot before handlers are registered."""
    return None
