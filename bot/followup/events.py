"""Visit reminders and the closing message: kept in `followup_events`, sent once each.

`sync_plans` keeps every active or paused patient's rows in step with their anchor (it runs on
each tick and costs one indexed query when nothing changed); `send_due` does what has come due.
Sending a row and marking it done is one transaction with the outbox insert, so a restart
neither loses nor repeats a reminder.

Catch-up after downtime: a reminder that came due while the bot was down is still sent, unless
the visit day has already come (it expired) or a later reminder for the same visit is due too
(then only the later one goes out). The closing message is never skipped: it also ends the
follow-up (patient status `completed`, no prompts after).
"""

from __future__ import annotations

import json
from datetime import date, datetime

import aiosqlite

from bot import messenger
from bot.channels.patients import notify_patient, route_for_patient
from bot.clock import from_iso, iso
from bot.followup.plan import planned_events, signature
from bot.i18n import t
from bot.messenger import Priority
from bot.services.runtime import Runtime
from conversations import schedule_view
from storage import audit, repo
from storage import channels as channel_store
from storage import followup as store
from storage import lifecycle as lifecycle_store


def _event_rows(rt: Runtime, patient: repo.Patient, now: datetime) -> list[tuple[object, ...]]:
    """Rows to insert for one patient: future reminders, and the closing message always."""
    return [
        (
            patient.id,
            e.key,
            e.kind,
            iso(e.due_at),
            iso(e.expires_at) if e.expires_at else None,
            json.dumps(e.data, ensure_ascii=False, sort_keys=True),
        )
        for e in planned_events(
            rt.study, patient.injection_date, patient.timezone, patient.prompt_time
        )
        if e.kind == "closing" or e.due_at > now
    ]


async def _store_plans(
    conn: aiosqlite.Connection,
    rt: Runtime,
    patients: list[repo.Patient],
    replanned: list[int],
    now: datetime,
) -> None:
    """Replace pending rows of `replanned` patients and plan every one of `patients`.

    Rows already sent or skipped stay (history); a key that was already sent is not inserted
    again (INSERT OR IGNORE on the patient's key). Batched: the first start after an upgrade
    plans every patient at once.
    """
    await store.replace_plans(
        conn,
        replanned,
        [row for p in patients for row in _event_rows(rt, p, now)],
        [
            (p.id, signature(p.injection_date, p.timezone, p.prompt_time), iso(now))
            for p in patients
        ],
    )


async def sync_patient(
    conn: aiosqlite.Connection, rt: Runtime, patient: repo.Patient, now: datetime
) -> None:
    """Re-plan one patient now (re-anchor does this in its own transaction).

    Only future reminders are planned (a patient linked on day 28 is not told about a reminder
    that was due on day 27); the closing row is always planned.
    """
    await _store_plans(conn, rt, [patient], [patient.id], now)


PLAN_BATCH = 500


async def sync_plans(rt: Runtime, now: datetime) -> int:
    """Plan every active or paused patient whose anchor changed (or who was never planned).

    One indexed query per tick when nothing changed; the write transaction only when needed.
    In batches of `PLAN_BATCH` patients, each its own transaction: the first start after an
    upgrade plans every patient, and batching keeps that from holding the write lock (and the
    rows in memory) for all of them at once — a patient's tap waits for one batch at most.
    """
    if not await store.any_stale(rt.db.conn):
        return 0
    planned, after = 0, 0
    while True:
        async with rt.db.transaction() as conn:
            found = await store.stale_patients(conn, after, PLAN_BATCH)
            patients = [p for p, _ in found]
            replanned = [p.id for p, had_plan in found if had_plan]
            await _store_plans(conn, rt, patients, replanned, now)
        planned += len(patients)
        if len(found) < PLAN_BATCH:
            return planned
        after = patients[-1].id


async def cancel_pending(
    conn: aiosqlite.Connection, patient_id: int, now: datetime, *, keep_closing: bool = False
) -> int:
    """Withdrawn or finished: nothing more is sent to this patient."""
    return await store.cancel_pending_events(conn, patient_id, now, keep_closing=keep_closing)


async def next_due(rt: Runtime, now: datetime) -> datetime | None:
    value = await store.next_due_at(rt.db.conn, now)
    return from_iso(value) if value else None


async def send_due(rt: Runtime, now: datetime) -> int:
    """Send (or skip) every pending event that has come due. Returns how many were handled."""
    if not await store.any_due(rt.db.conn, now):
        return 0
    async with rt.db.transaction() as conn:
        rows = await store.due_events(conn, now)
        latest: dict[tuple[int, str, str], int] = {}
        for r in rows:
            if r["kind"] == "visit_reminder":
                data = json.loads(r["data"])
                latest[(r["patient_id"], data["visit"], data["target"])] = r["id"]
        for r in rows:
            patient = await repo.patient_by_id(conn, r["patient_id"])
            assert patient is not None
            if r["kind"] == "closing":
                await _close_follow_up(conn, rt, patient, r, now)
                continue
            data = json.loads(r["data"])
            reason = None
            if patient.status != "active":
                reason = f"patient {patient.status}"
            elif route_for_patient(await channel_store.patient_row(conn, patient.id)) is None:
                reason = "unreachable"
            elif r["expires_at"] and from_iso(r["expires_at"]) <= now:
                reason = "visit day reached"
            elif latest[(patient.id, data["visit"], data["target"])] != r["id"]:
                reason = "superseded by a later reminder"
            await _finish_reminder(conn, rt, patient, r, data, now, reason)
    rt.wake_sender()
    return len(rows)


async def _finish_reminder(
    conn: aiosqlite.Connection,
    rt: Runtime,
    patient: repo.Patient,
    row: aiosqlite.Row,
    data: dict[str, object],
    now: datetime,
    skip_reason: str | None,
) -> None:
    status = "skipped" if skip_reason else "sent"
    if skip_reason is None:  # the chat, or an SMS for a web-diary patient
        _ = t(patient.lang)
        text = schedule_view.visit_reminder_text(_, rt.study, data)
        params = {
            "visit": _(str(data.get("name", ""))),
            "date": _.date(date.fromisoformat(str(data["target"]))),
        }
        await notify_patient(
            conn,
            now,
            rt.study,
            await channel_store.patient_row(conn, patient.id),
            "visit_reminder",
            telegram_text=text,
            params=params,
            priority=Priority.PROMPT,
            ref=f"followup:{row['id']}",
            sms_text_override=text,
        )
    await store.finish_event(conn, row["id"], status, now)
    await audit.record(
        conn,
        now,
        "system",
        "visit_reminder_sent" if skip_reason is None else "visit_reminder_skipped",
        subject=patient.subject,
        entity=row["key"],
        new=status,
        reason=skip_reason,
    )


async def _close_follow_up(
    conn: aiosqlite.Connection,
    rt: Runtime,
    patient: repo.Patient,
    row: aiosqlite.Row,
    now: datetime,
) -> None:
    """Day 730: the patient is thanked and the follow-up ends (status completed)."""
    if patient.status not in ("active", "paused"):
        await store.cancel_event(conn, row["id"], now)
        return
    await lifecycle_store.set_completed(conn, patient.id)
    # No diary opens after the closing day (domain.schedule caps every phase there); a weekly
    # diary still open now may be finished until its window closes, then the scheduler closes
    # it as usual. The status check in the scheduler stops prompts and reminders from here on.
    await cancel_pending(conn, patient.id, now, keep_closing=True)
    reachable = patient.chat_id is not None and not patient.unreachable
    if reachable:
        assert patient.chat_id is not None
        await messenger.enqueue(
            conn,
            now,
            patient.chat_id,
            schedule_view.closing_text(t(patient.lang), rt.study),
            priority=Priority.PROMPT,
            ref=f"followup:{row['id']}",
        )
    await store.finish_event(conn, row["id"], "sent" if reachable else "skipped", now)
    await audit.record(
        conn,
        now,
        "system",
        "follow_up_completed",
        subject=patient.subject,
        entity="patient",
        old=patient.status,
        new="completed",
        reason=None if reachable else "closing message not sent: unreachable",
    )
