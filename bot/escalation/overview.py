"""What the staff commands /patients and /patient show, read from storage (no Telegram)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import aiosqlite

from bot.domain.compliance import Compliance, compliance
from bot.domain.rules import baseline_means
from bot.domain.study import Phase, Study
from bot.escalation import service
from bot.services.runtime import Runtime
from storage import alerts as store
from storage import repo


def phase_at(study: Study, day: int) -> Phase | None:
    return next((p for p in study.phases if p.first_day <= day <= p.last_day), None)


@dataclass(frozen=True)
class PatientSummary:
    patient: repo.Patient
    study_day: int
    last_diary: date | None
    compliance: Compliance
    open_alerts: int


@dataclass(frozen=True)
class DayRow:
    occ: repo.OccRow
    answers: dict[str, str]
    alert_levels: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class PatientDetail:
    summary: PatientSummary
    baseline: dict[str, float]
    days: list[DayRow]
    alerts: list[store.Alert]


async def _summary(
    rt: Runtime, conn: aiosqlite.Connection, patient: repo.Patient
) -> PatientSummary:
    occs = await repo.occurrences_for(conn, patient.id)
    today = service.study_day_today(rt, patient)
    done = [o.local_date for o in occs if o.status == "completed"]
    unfinished = await store.listing(conn, statuses=("open", "acknowledged"), patient_id=patient.id)
    return PatientSummary(
        patient=patient,
        study_day=today,
        last_diary=max(done) if done else None,
        compliance=compliance([(o.study_day, o.phase, o.status) for o in occs], today),
        open_alerts=len(unfinished),
    )


async def summaries(rt: Runtime) -> list[PatientSummary]:
    """Every enrolled patient, by subject ID."""
    conn = rt.db.conn
    return [await _summary(rt, conn, p) for p in await repo.all_patients(conn)]


async def detail(rt: Runtime, subject: str, days: int = 14) -> PatientDetail | None:
    """One patient: summary, baseline, the diaries of the last `days` local days, alerts."""
    conn = rt.db.conn
    patient = await repo.patient_by_subject(conn, subject)
    if patient is None:
        return None
    summary = await _summary(rt, conn, patient)
    today = rt.local_today(patient.timezone)
    since = today - timedelta(days=days - 1)
    occs = [
        o
        for o in await repo.occurrences_for(conn, patient.id)
        if since <= o.local_date <= today and o.opens_at <= rt.now()
    ]
    levels: dict[str, set[str]] = {}
    unfinished = []
    for alert_id in await repo.alert_ids_of(conn, patient.id):
        alert = await store.get(conn, alert_id)
        assert alert is not None
        for ev in alert.events:
            if "key" in ev:
                levels.setdefault(ev["key"], set()).add(alert.level)
        if alert.status != "closed":
            unfinished.append(alert)
    rows = [
        DayRow(o, await repo.answers(conn, o.id), frozenset(levels.get(o.key, set())))
        for o in reversed(occs)
    ]
    history = await service.diaries(conn, patient.id)
    return PatientDetail(summary, baseline_means(rt.study, history), rows, unfinished)
