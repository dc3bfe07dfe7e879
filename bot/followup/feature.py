"""Wires the 24-month follow-up into the bot: scheduler duties, patient and staff commands.

Scheduler duties (each tick, in this order): keep visit reminders and the closing message in
step with each patient's anchor; send what has come due; record "missed N in a row" events;
send the coordinator digest once a day. `next_wake` tells the scheduler when the next one is due
so APScheduler's single wake-up job is set for it. The duties are `FollowUp`
(bot/followup/duties.py).
"""

from __future__ import annotations

from bot.followup import escalation_link
from bot.followup.duties import RETRY, FollowUp
from bot.registry import FeatureHost
from conversations import schedule_view, staff_schedule

__all__ = ["RETRY", "FollowUp", "install"]


def install(bot: FeatureHost) -> None:
    fu = FollowUp(bot.rt)
    bot.hooks.followup = fu
    bot.scheduler.hooks.append(fu.on_tick)
    bot.scheduler.wake_hooks.append(fu.next_wake)
    commands = bot.hooks.commands
    commands["schedule"] = schedule_view.on_schedule
    commands["pause"] = staff_schedule.on_pause
    commands["resume"] = staff_schedule.on_resume
    commands["withdraw"] = staff_schedule.on_withdraw
    commands["reanchor"] = staff_schedule.on_reanchor
    commands["compliance"] = staff_schedule.on_compliance
    bot.hooks.staff_buttons[staff_schedule.AREA] = staff_schedule.on_button
    fu.compliance_routers.append(escalation_link.compliance_router(bot.rt))
    fu.alert_counter = escalation_link.open_review_alerts
