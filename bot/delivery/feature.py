"""Wires delivery into the bot: "reachable again" before every handler, and the health line.

- group -2, before the router's guard: an update from a patient marked unreachable clears the
  flag (bot/delivery/reachability.py); other features add `bot.hooks.on_reachable` hooks
  `(conn, chat_id, now)`, called in that transaction (the mirror of "on_unreachable");
- at most every `HEALTH_EVERY` of clock time: a health line in the log (bot/delivery/health.py);
- at most every `PRUNE_EVERY`: sent messages older than the study's retention period lose
  their text (bot/delivery/retention.py).
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import TypeHandler

from bot.delivery.health import HealthLog
from bot.delivery.inbound import FLOOD_GROUP, FloodGuard
from bot.delivery.reachability import UnreachableChats
from bot.delivery.retention import OutboxRetention
from bot.registry import FeatureHost

REACHABILITY_GROUP = -2


def install(bot: FeatureHost) -> None:
    guard = FloodGuard(bot.rt, bot.hooks.inbound_limits)
    bot.hooks.flood_guard = guard
    bot.hooks.admit_update = guard.admit  # the poller asks before parsing
    bot.app.add_handler(TypeHandler(Update, guard.on_update, block=True), group=FLOOD_GROUP)
    bot.scheduler.hooks.append(guard.on_tick)
    bot.scheduler.wake_hooks.append(guard.next_wake)
    unreachable = UnreachableChats(bot.rt)
    bot.hooks.on_unreachable.append(unreachable.on_unreachable)
    bot.app.add_handler(
        TypeHandler(Update, unreachable.on_update, block=True), group=REACHABILITY_GROUP
    )
    health = HealthLog(bot.rt, bot.sender)
    bot.hooks.health = health
    bot.scheduler.hooks.append(health.on_tick)
    retention = OutboxRetention(bot.rt)
    bot.hooks.retention = retention
    bot.scheduler.hooks.append(retention.on_tick)
