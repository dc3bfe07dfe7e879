"""Wires delivery into the bot: "reachable again" before every handler, and the health line.

- group -2, before the router's guard: an update from a patient marked unreachable clears the
  flag (bot/delivery/reachability.py); other features add `bot.extras["on_reachable"]` hooks
  `(conn, chat_id, now)`, called in that transaction (the mirror of "on_unreachable");
- at most every `HEALTH_EVERY` of clock time: a health line in the log (bot/delivery/health.py);
- at most every `PRUNE_EVERY`: sent messages older than the study's retention period lose
  their text (bot/delivery/retention.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telegram import Update
from telegram.ext import TypeHandler

from bot.delivery.health import HealthLog
from bot.delivery.inbound import FLOOD_GROUP, FloodGuard, InboundLimits
from bot.delivery.reachability import UnreachableChats
from bot.delivery.retention import OutboxRetention

if TYPE_CHECKING:
    from bot.app import DiaryBot

REACHABILITY_GROUP = -2


def install(bot: DiaryBot) -> None:
    limits = bot.extras.get("inbound_limits")
    guard = FloodGuard(bot.rt, limits if isinstance(limits, InboundLimits) else None)
    bot.extras["flood_guard"] = guard
    bot.app.bot_data["admit_update"] = guard.admit  # the poller asks before parsing
    bot.app.add_handler(TypeHandler(Update, guard.on_update, block=True), group=FLOOD_GROUP)
    bot.scheduler.hooks.append(guard.on_tick)
    bot.scheduler.wake_hooks.append(guard.next_wake)
    hooks = bot.extras.setdefault("on_reachable", [])
    bot.app.bot_data["on_reachable"] = hooks  # the same list: hooks added later are seen
    unreachable = UnreachableChats(bot.rt)
    blocked = bot.extras.setdefault("on_unreachable", [])
    assert isinstance(blocked, list)
    blocked.append(unreachable.on_unreachable)
    bot.app.add_handler(
        TypeHandler(Update, unreachable.on_update, block=True), group=REACHABILITY_GROUP
    )
    health = HealthLog(bot.rt, bot.sender)
    bot.extras["health"] = health
    bot.scheduler.hooks.append(health.on_tick)
    retention = OutboxRetention(bot.rt)
    bot.extras["retention"] = retention
    bot.scheduler.hooks.append(retention.on_tick)
