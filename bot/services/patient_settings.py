"""A patient's own settings: language, prompt time, time zone. Future prompts move; past stay."""

from __future__ import annotations

from datetime import datetime, time

import aiosqlite

from bot.domain.schedule import diary_occurrences
from bot.services.runtime import Runtime
from storage import audit, repo

# The short list offered as buttons; anything else can be typed as an IANA name.
COMMON_TIMEZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Europe/London",
    "America/New_York",
)
PROMPT_TIMES = ("08:00", "12:00", "18:00", "19:00", "20:00", "21:00", "22:00")


async def reschedule(
    rt: Runtime, conn: aiosqlite.Connection, patient: repo.Patient, now: datetime
) -> int:
    """Recompute occurrences not yet opened; keep everything that already happened.

    Rows still 'scheduled' whose window has not opened are replaced; any day that was already
    prompted, completed or missed keeps its row (the UNIQUE key makes the insert skip it).
    Returns how many future occurrences were replaced.
    """
    removed = await repo.delete_future_scheduled(conn, patient.id, now)
    occs = diary_occurrences(
        rt.study,
        patient.injection_date,
        patient.timezone,
        patient.prompt_time,
        enrolled_on=patient.enrolled_on,
    )
    await repo.insert_occurrences(conn, patient.id, [o for o in occs if o.closes_at > now])
    return removed


async def _update(
    rt: Runtime, patient: repo.Patient, column: str, value: str, action: str, old: str | None
) -> repo.Patient:
    now = rt.now()
    async with rt.db.transaction() as conn:
        await repo.set_patient_setting(conn, patient.id, column, value)
        await audit.record(
            conn,
            now,
            f"patient:{patient.subject}",
            action,
            subject=patient.subject,
            entity="patient",
            old=old,
            new=value,
        )
        updated = await repo.patient_by_id(conn, patient.id)
        assert updated is not None
        if column in ("prompt_time", "timezone") and updated.status == "active":
            await reschedule(rt, conn, updated, now)
    await rt.poke_scheduler()
    return updated


async def set_language(rt: Runtime, patient: repo.Patient, locale: str) -> repo.Patient:
    return await _update(rt, patient, "lang", locale, "set_language", patient.lang)


async def set_prompt_time(rt: Runtime, patient: repo.Patient, at: time) -> repo.Patient:
    return await _update(
        rt,
        patient,
        "prompt_time",
        at.strftime("%H:%M"),
        "set_prompt_time",
        patient.prompt_time.strftime("%H:%M"),
    )


async def set_timezone(rt: Runtime, patient: repo.Patient, tz: str) -> repo.Patient:
    return await _update(rt, patient, "timezone", tz, "set_timezone", patient.timezone)


async def set_pending(rt: Runtime, chat_id: int, kind: str | None) -> None:
    async with rt.db.transaction() as conn:
        if kind is None:
            await repo.clear_pending_input(conn, chat_id)
        else:
            await repo.set_pending_input(conn, chat_id, kind, rt.now())


async def pending(rt: Runtime, chat_id: int) -> str | None:
    return await repo.pending_input(rt.db.conn, chat_id)
