"""Compliance alerts: N diaries missed in a row, and a patient who blocked the bot.

The follow-up feature decides when a run of misses is new (one event per run, see
bot/followup/compliance_watch.py) and raises the alert with `service.raise_compliance` and
`MISSED_REASON` (bot/followup/escalation_link.py). A blocked bot is reported by the sender
(`on_unreachable`). Both are alerts of level "compliance": the team phones the patient, so
acknowledging one closes it.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.clock import iso
from bot.escalation import service
from bot.escalation.views import BLOCKED
from bot.i18n import N_
from bot.services.runtime import Runtime
from storage import alerts as store
from storage import audit, repo

MISSED_REASON = N_("Diaries missed in a row")
BLOCKED_REASON = N_("The patient blocked the bot")


async def on_unreachable(
    rt: Runtime, conn: aiosqlite.Connection, chat_id: int, now: datetime
) -> None:
    """The sender found that a patient blocked the bot: the team must phone them.

    One alert per patient while it is open (a second report updates it).
    """
    patient_id = await repo.patient_id_by_chat(conn, chat_id)
    if patient_id is None:
        return
    patient = await repo.patient_by_id(conn, patient_id)
    assert patient is not None
    await service.raise_compliance(rt, conn, patient, BLOCKED, BLOCKED_REASON, {"at": iso(now)})


async def on_reachable(
    rt: Runtime, conn: aiosqlite.Connection, chat_id: int, now: datetime
) -> None:
    """The patient wrote to the bot again: an unacknowledged "blocked" alert is resolved.

    Closed by the system (audited) and every copy edited to say so, so nobody phones a patient
    who is back; an alert someone already acknowledged keeps its human outcome.
    """
    patient_id = await repo.patient_id_by_chat(conn, chat_id)
    if patient_id is None:
        return
    alert = await store.open_for(conn, patient_id, BLOCKED)
    if alert is None:
        return
    details = {**alert.details, "reachable_at": iso(now)}
    await store.set_fields(
        conn,
        alert.id,
        status="closed",
        closed_at=now,
        updated_at=now,
        details=details,
    )
    await audit.record(
        conn,
        now,
        "system",
        "alert_closed",
        subject=alert.subject,
        entity=f"alert:{alert.id}",
        old="open",
        new="closed",
        reason="the patient wrote to the bot again",
    )
    await service.refresh(rt, conn, alert.id, now)
