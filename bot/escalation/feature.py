"""Wires escalation into the bot: diary-submit duties, scheduler duties, staff commands and
buttons, the patient's "I made a mistake", and the compliance alerts.

What goes where:
- on each stored diary answer: the urgent rules → alerts (+ the safety text) before Submit;
- on diary submit: rules → alerts (+ the safety text for the patient); the mistake button;
- every tick: diaries closed unsubmitted (incomplete) get their rules run once;
- every tick: re-send unacknowledged urgent alerts; remind of unreported possible SAEs;
- sender: a patient who blocked the bot → compliance alert; delivery: they wrote again → the
  unacknowledged alert is closed;
- the follow-up feature hooks itself in (bot/followup/escalation_link.py): its "missed N in a
  row" events become compliance alerts and the digest counts open review alerts.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.escalation import (
    compliance,
    corrections,
    handlers,
    service,
    staff_commands,
    staff_views,
)
from bot.escalation.views import AREA
from bot.registry import FeatureHost


def install(bot: FeatureHost) -> None:
    rt = bot.rt
    bot.diary.on_submit.append(service.on_submit)
    bot.diary.on_answer.append(service.on_answer)
    bot.diary.on_submit.append(corrections.on_submit)

    async def on_tick(now: datetime) -> None:
        await service.rules_on_closed(rt, now)
        await service.resend_due(rt, now)
        await service.sae_reminders_due(rt, now)

    async def next_wake(now: datetime) -> datetime | None:
        return await service.next_wake(rt, now)

    async def on_unreachable(conn: aiosqlite.Connection, chat_id: int, now: datetime) -> None:
        await compliance.on_unreachable(rt, conn, chat_id, now)

    bot.scheduler.hooks.append(on_tick)
    bot.scheduler.wake_hooks.append(next_wake)
    hooks = bot.hooks
    hooks.on_unreachable.append(on_unreachable)

    async def on_reachable(conn: aiosqlite.Connection, chat_id: int, now: datetime) -> None:
        await compliance.on_reachable(rt, conn, chat_id, now)

    hooks.on_reachable.append(on_reachable)  # run by bot/delivery/reachability.py

    hooks.commands.update(staff_commands.COMMANDS)
    hooks.staff_buttons[AREA] = handlers.on_alert_button
    hooks.staff_buttons[corrections.AREA] = handlers.on_change_button
    hooks.staff_buttons[staff_views.PAGE_AREA] = staff_commands.on_page_button
    hooks.group_buttons.add(AREA)  # alert buttons work in the staff group
    hooks.staff_text = handlers.staff_text(hooks.staff_text)
    hooks.patient_text.append(handlers.on_patient_text)
