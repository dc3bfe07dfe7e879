"""The bot's features, each wired in by its own `install` (handlers, hooks, commands).

Kept explicit (no plugin discovery): reading this file tells what the bot does.
"""

from __future__ import annotations

from bot.dataout import feature as dataout
from bot.delivery import feature as delivery
from bot.escalation import feature as escalation
from bot.followup import feature as followup
from bot.ops import feature as backups
from bot.registry import FeatureHost

FEATURES = (escalation, followup, delivery, dataout, backups)


def install(bot: FeatureHost) -> None:
    for feature in FEATURES:
        feature.install(bot)
