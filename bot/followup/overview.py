"""What a patient's /schedule shows: where they are in the follow-up and what comes next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.domain.schedule import VisitDue, phase_for_day, visit_schedule
from bot.domain.study import Phase, Study
from bot.followup.compliance_report import PatientCompliance, local_today, patient_compliance
from storage import repo


@dataclass(frozen=True)
class Overview:
    patient: repo.Patient
    day: int
    phase: Phase | None
    open_now: repo.OccRow | None  # a diary the patient can fill in right now
    next_occ: repo.OccRow | None  # the next diary that will open
    next_visit: VisitDue | None
    compliance: PatientCompliance


def next_visit(study: Study, patient: repo.Patient, now: datetime) -> VisitDue | None:
    """The first visit whose window has not ended yet (today counts)."""
    today = local_today(patient, now)
    for v in visit_schedule(study, patient.injection_date):
        if v.window_end >= today:
            return v
    return None


async def overview(
    conn: aiosqlite.Connection, study: Study, patient: repo.Patient, now: datetime
) -> Overview:
    comp = await patient_compliance(conn, patient, now)
    open_now = await repo.open_occurrence(conn, patient.id, now)
    next_occ = await repo.next_planned(conn, patient.id, now)
    return Overview(
        patient=patient,
        day=comp.today_day,
        phase=phase_for_day(study, comp.today_day),
        open_now=open_now,
        next_occ=next_occ,
        next_visit=next_visit(study, patient, now),
        compliance=comp,
    )
