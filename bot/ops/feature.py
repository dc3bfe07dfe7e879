"""Wires the bot's own backups into the bot: a scheduler duty (bot/ops/backups.py)."""

from __future__ import annotations

from bot.ops.backups import BackupSchedule
from bot.registry import FeatureHost


def install(bot: FeatureHost) -> None:
    """Off until `configure()`: `diarybot run` turns it on; tests opt in."""
    schedule = BackupSchedule(bot.rt)
    bot.hooks.backups = schedule
    bot.scheduler.hooks.append(schedule.on_tick)
    bot.scheduler.wake_hooks.append(schedule.next_wake)
