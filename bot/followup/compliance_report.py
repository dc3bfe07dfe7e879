"""Compliance per patient from the occurrences table, through the pure `domain.compliance`.

Days are counted from the patient's *current* Day 0 by each diary's local date, so after a
re-anchor the 7- and 30-day windows still mean "the last 7 / 30 calendar days"; the phase of an
entry stays the one it was asked (and answered) for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import aiosqlite

from bot.domain.compliance import Compliance, compliance
from bot.domain.schedule import study_day
from storage import repo


@dataclass(frozen=True)
class PatientCompliance:
    subject: str
    status: str
    today_day: int
    summary: Compliance
    recent: tuple[str, ...]  # the last due diaries, oldest first: completed | missed


def local_today(patient: repo.Patient, now: datetime) -> date:
    return now.astimezone(ZoneInfo(patient.timezone)).date()


def summarise(
    patient: repo.Patient, rows: Iterable[tuple[str, str, str]], now: datetime, recent: int = 7
) -> PatientCompliance:
    """rows: (local_date ISO, phase, status) of every occurrence of this patient."""
    anchor = patient.injection_date
    triples = [(study_day(anchor, date.fromisoformat(d)), ph, st) for d, ph, st in rows]
    today = study_day(anchor, local_today(patient, now))
    due = sorted((d, st) for d, _, st in triples if st in ("completed", "missed") and d <= today)
    return PatientCompliance(
        subject=patient.subject,
        status=patient.status,
        today_day=today,
        summary=compliance(triples, today),
        recent=tuple(st for _, st in due[-recent:]) if recent else (),
    )


async def patient_compliance(
    conn: aiosqlite.Connection, patient: repo.Patient, now: datetime
) -> PatientCompliance:
    return summarise(patient, await repo.diary_states(conn, patient.id), now)


async def all_compliance(
    conn: aiosqlite.Connection, now: datetime, statuses: tuple[str, ...] = ("active", "paused")
) -> list[PatientCompliance]:
    """Every patient in `statuses`, by subject; two queries whatever the number of patients."""
    patients = await repo.patients_in(conn, statuses)
    by_patient: dict[int, list[tuple[str, str, str]]] = {p.id: [] for p in patients}
    for pid, local_date, phase, status in await repo.diary_states_in(conn, statuses):
        by_patient[pid].append((local_date, phase, status))
    return [summarise(p, by_patient[p.id], now) for p in patients]
