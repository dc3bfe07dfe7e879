"""Pause, resume, withdraw and re-anchor a patient: the study team's controls over a follow-up.

Each is one transaction: the patient row, their occurrences, the audit entry (with the reason)
and the polite notice to the patient are stored together or not at all. Refusals raise
`LifecycleError` before anything is written; its msgid is translated for staff in Telegram and
printed in English by the CLI.

Occurrence rules:
- pause: every diary not yet completed whose window has not closed becomes `paused` (so it is
  never marked missed); days that close while paused stay `paused`.
- resume: paused diaries whose window is still open or in the future come back (prompted ones as
  they were), then future diaries are recomputed from the current prompt time and time zone
  (the patient may have changed them while paused).
- withdraw: nothing more is asked; open and future diaries become `withdrawn`; all data stay.
- re-anchor: Day 0 moves; future diaries are recomputed (domain `reanchor`: nothing that already
  opened changes), every stored diary gets the study day of the new Day 0, and the rules run
  again on the stored diaries that are data (awareness: the re-anchor's time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import aiosqlite

from bot import messenger
from bot.domain.schedule import (
    Occurrence,
    closing_at,
    diary_occurrences,
    reanchor,
    relabelled_days,
)
from bot.escalation import corrections
from bot.escalation.service import Raised
from bot.followup import events
from bot.i18n import N_, T, t
from bot.messenger import Priority
from bot.services.diary import close_unsubmitted
from bot.services.patient_settings import reschedule
from bot.services.runtime import Runtime
from conversations import schedule_view
from storage import audit, repo
from storage import lifecycle as lifecycle_store

OPEN = ("scheduled", "prompted", "reminded")


class LifecycleError(ValueError):
    """A refused change; nothing was written. `text(_)` is the localized one-line reason."""

    def __init__(self, msgid: str, **kwargs: Any) -> None:
        super().__init__(msgid.format(**kwargs))
        self.msgid = msgid
        self.kwargs = kwargs

    def text(self, _: T) -> str:
        return _(self.msgid, **self.kwargs)


@dataclass(frozen=True)
class Change:
    subject: str
    action: str
    old_status: str
    new_status: str
    occurrences: int  # diaries whose state changed (or that were recomputed)
    notified: bool  # a notice to the patient was queued
    detail: dict[str, Any] = field(default_factory=dict)


async def find_patient(conn: aiosqlite.Connection, subject: str) -> repo.Patient:
    """By subject ID; `rp-001` finds RP-001 when that is unambiguous."""
    patient = await repo.patient_by_subject(conn, subject)
    if patient is None:
        found = await repo.patients_by_subject_nocase(conn, subject)
        if len(found) == 1:
            patient = found[0]
    if patient is None:
        raise LifecycleError(N_("There is no patient {subject}."), subject=subject)
    return patient


def _state_refusal(patient: repo.Patient) -> LifecycleError:
    messages = {
        "invited": N_("{subject} has not joined the diary yet."),
        "active": N_("{subject} is not paused."),
        "paused": N_("{subject} is already paused."),
        "withdrawn": N_("{subject} has withdrawn from the diary."),
        "completed": N_("{subject} has already completed the follow-up."),
    }
    return LifecycleError(messages[patient.status], subject=patient.subject)


async def _notify(
    conn: aiosqlite.Connection, now: datetime, patient: repo.Patient, text: str, ref: str
) -> bool:
    if patient.chat_id is None or patient.unreachable:
        return False
    await messenger.enqueue(conn, now, patient.chat_id, text, priority=Priority.PROMPT, ref=ref)
    return True


async def _done(rt: Runtime) -> None:
    rt.wake_sender()
    await rt.poke_scheduler()


# --------------------------------------------------------------------------- pause / resume


async def _close_open_diary(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    now: datetime,
    actor: str,
    why: str,
) -> None:
    """A diary the patient had started: its answers stay as data (status incomplete) and its
    rules run at the next tick, as when a window closes unsubmitted."""
    occ = await repo.open_occurrence(conn, patient.id, now)
    if occ is not None:
        await close_unsubmitted(conn, rt.study, occ.id, patient.subject, now, actor=actor, why=why)


async def pause(rt: Runtime, subject: str, *, actor: str, reason: str | None = None) -> Change:
    now = rt.now()
    async with rt.db.transaction() as conn:
        patient = await find_patient(conn, subject)
        if patient.status != "active":
            raise _state_refusal(patient)
        await lifecycle_store.set_paused(conn, patient.id)
        await _close_open_diary(rt, conn, patient, now, actor, "patient paused")
        count = await lifecycle_store.pause_open_diaries(conn, patient.id, now)
        await repo.clear_diary_session(conn, patient.id)
        await audit.record(
            conn,
            now,
            actor,
            "pause",
            subject=patient.subject,
            entity="patient",
            old="active",
            new={"status": "paused", "diaries_paused": count},
            reason=reason,
        )
        text = schedule_view.paused_notice(t(patient.lang), rt.study)
        notified = await _notify(conn, now, patient, text, f"pause:{patient.id}")
    await _done(rt)
    return Change(patient.subject, "pause", "active", "paused", count, notified)


async def resume(rt: Runtime, subject: str, *, actor: str, reason: str | None = None) -> Change:
    now = rt.now()
    async with rt.db.transaction() as conn:
        patient = await find_patient(conn, subject)
        if patient.status != "paused":
            if patient.status == "active":
                raise LifecycleError(N_("{subject} is not paused."), subject=patient.subject)
            raise _state_refusal(patient)
        await lifecycle_store.set_active(conn, patient.id)
        # A diary that was prompted before the pause comes back as it was; if its reminder
        # time has passed it counts as reminded (the resume notice is reminder enough).
        count = await lifecycle_store.resume_paused_diaries(conn, patient.id, now)
        updated = await repo.patient_by_id(conn, patient.id)
        assert updated is not None
        await reschedule(rt, conn, updated, now)
        await audit.record(
            conn,
            now,
            actor,
            "resume",
            subject=patient.subject,
            entity="patient",
            old="paused",
            new={"status": "active", "diaries_resumed": count},
            reason=reason,
        )
        nxt = await repo.next_opening(conn, patient.id, now)
        open_now = await repo.open_occurrence(conn, patient.id, now)
        text = schedule_view.resumed_notice(t(patient.lang), updated, nxt, open_now)
        notified = await _notify(conn, now, patient, text, f"resume:{patient.id}")
    await _done(rt)
    return Change(patient.subject, "resume", "paused", "active", count, notified)


# --------------------------------------------------------------------------- withdraw


def check_withdraw(patient: repo.Patient) -> None:
    if patient.status in ("withdrawn", "completed"):
        raise _state_refusal(patient)


async def withdraw(rt: Runtime, subject: str, *, actor: str, reason: str | None = None) -> Change:
    """No more prompts or reminders of any kind; every stored answer stays (GCP retention)."""
    now = rt.now()
    async with rt.db.transaction() as conn:
        patient = await find_patient(conn, subject)
        check_withdraw(patient)
        await lifecycle_store.set_withdrawn(conn, patient.id)
        await _close_open_diary(rt, conn, patient, now, actor, "patient withdrawn")
        count = await lifecycle_store.withdraw_open_diaries(conn, patient.id, now)
        await repo.clear_diary_session(conn, patient.id)
        await events.cancel_pending(conn, patient.id, now)
        await audit.record(
            conn,
            now,
            actor,
            "withdraw",
            subject=patient.subject,
            entity="patient",
            old=patient.status,
            new={"status": "withdrawn", "diaries_withdrawn": count},
            reason=reason,
        )
        text = schedule_view.withdrawn_notice(t(patient.lang), rt.study)
        notified = await _notify(conn, now, patient, text, f"withdraw:{patient.id}")
    await _done(rt)
    return Change(patient.subject, "withdraw", patient.status, "withdrawn", count, notified)


# --------------------------------------------------------------------------- re-anchor


def _as_domain(o: repo.OccRow) -> Occurrence:
    return Occurrence(
        key=o.key,
        phase=o.phase,
        form=o.form,
        study_day=o.study_day,
        local_date=o.local_date,
        opens_at=o.opens_at,
        remind_at=o.remind_at,
        closes_at=o.closes_at,
    )


def check_reanchor(rt: Runtime, patient: repo.Patient, new_date: date, now: datetime) -> None:
    if patient.status in ("withdrawn", "completed"):
        raise _state_refusal(patient)
    if new_date == patient.injection_date:
        raise LifecycleError(
            N_("Day 0 of {subject} is already {date}."),
            subject=patient.subject,
            date=new_date.isoformat(),
        )
    if closing_at(rt.study, new_date, patient.timezone, patient.prompt_time) <= now:
        raise LifecycleError(
            N_("With day 0 on {date} the follow-up of {subject} would already be over."),
            subject=patient.subject,
            date=new_date.isoformat(),
        )


async def reanchor_patient(
    rt: Runtime, subject: str, new_date: date, *, actor: str, reason: str | None = None
) -> Change:
    now = rt.now()
    async with rt.db.transaction() as conn:
        patient = await find_patient(conn, subject)
        check_reanchor(rt, patient, new_date, now)
        await lifecycle_store.set_injection_date(conn, patient.id, new_date)
        updated = await repo.patient_by_id(conn, patient.id)
        assert updated is not None
        removed = added = 0
        if patient.status in ("active", "paused"):
            removed, added = await _recompute(conn, rt, updated, now)
            await events.sync_patient(conn, rt, updated, now)
        stored = await repo.occurrences_for(conn, patient.id)
        relabel = relabelled_days(
            [(o.id, o.local_date, o.study_day) for o in stored], updated.injection_date
        )
        await repo.set_study_days(conn, relabel)
        rechecked = await _recheck_relabelled(rt, conn, updated, now)
        await audit.record(
            conn,
            now,
            actor,
            "reanchor",
            subject=patient.subject,
            entity="injection_date",
            old=patient.injection_date.isoformat(),
            new={
                "injection_date": new_date.isoformat(),
                "removed": removed,
                "added": added,
                "relabelled": len(relabel),
                "alerts": [r.alert_id for r in rechecked if r.rules],
            },
            reason=reason,
        )
        notified = False
        if patient.status == "active":
            nxt = await repo.next_opening(conn, patient.id, now)
            text = schedule_view.reanchored_notice(t(patient.lang), updated, nxt)
            notified = await _notify(conn, now, patient, text, f"reanchor:{patient.id}")
    await _done(rt)
    return Change(
        patient.subject,
        "reanchor",
        patient.status,
        patient.status,
        removed + added,
        notified,
        {
            "old_date": patient.injection_date.isoformat(),
            "new_date": new_date.isoformat(),
            "removed": removed,
            "added": added,
            "alerts": rechecked,
        },
    )


async def _recheck_relabelled(
    rt: Runtime, conn: aiosqlite.Connection, patient: repo.Patient, now: datetime
) -> list[Raised]:
    """After the relabel, the rules run again on every stored diary that is data: the Days 0-14
    rules and the no-baseline fallbacks may now apply to a diary that changed day, and diaries
    that moved across Day 0 change the baseline of every later one. What now crosses a
    threshold raises with the re-anchor as the time of awareness; what no longer holds is noted
    on its card; an unchanged outcome changes nothing (docs/clinical-decisions.md)."""
    return await corrections.recheck(
        rt, conn, patient, await repo.data_diaries_from(conn, patient.id), now
    )


async def _recompute(
    conn: aiosqlite.Connection, rt: Runtime, patient: repo.Patient, now: datetime
) -> tuple[int, int]:
    """Replace future, untouched diaries with the ones of the new anchor. (removed, added)."""
    stored = await repo.occurrences_for(conn, patient.id)
    status = {o.key: o.status for o in stored}
    ids = {o.key: o.id for o in stored}
    new = diary_occurrences(
        rt.study,
        patient.injection_date,
        patient.timezone,
        patient.prompt_time,
        enrolled_on=patient.enrolled_on,
    )
    to_delete, to_insert, to_rekey = reanchor(
        [_as_domain(o) for o in stored],
        new,
        now,
        keep=lambda o: status[o.key] not in ("scheduled", "paused"),
    )
    await lifecycle_store.delete_occurrences(conn, [ids[o.key] for o in to_delete])
    # Diaries asked under the old anchor: their key names their date, freeing the plain key for
    # the new anchor's diary of that study day (reanchor_patient then relabels their study day).
    await lifecycle_store.rekey_occurrences(conn, [(key, ids[o.key]) for o, key in to_rekey])
    await repo.insert_occurrences(conn, patient.id, to_insert)
    if patient.status == "paused":
        await lifecycle_store.pause_future_scheduled(conn, patient.id, now)
    return len(to_delete), len(to_insert)
