"""Escalation's screens for the sandbox's /screens page (bot/sandbox/screens.py): the patient's
safety text and "I made a mistake", and every state of a staff alert, drawn by the real views."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot.domain.compliance import compliance
from bot.escalation import corrections, staff_views
from bot.escalation.overview import DayRow, PatientDetail, PatientSummary
from bot.escalation.views import BLOCKED, DATA_CHANGE, MISSED, alert_card, safety_text
from bot.sandbox.screens import SAMPLE_TEXT, Samples, Screen
from storage.alerts import Alert

GROUP = "Escalation"
NAMES = {1001: "王芳 Wang Fang", 1003: "Dr Li"}


def _alert(s: Samples, **kw: Any) -> Alert:
    occ = s.daily
    answered = occ.opens_at + timedelta(minutes=40)
    base = Alert(
        id=12,
        patient_id=s.patient.id,
        subject=s.patient.subject,
        rule="BLEED_HEAVY",
        level="urgent",
        reason="Dripping blood or clots",
        status="open",
        details={
            "events": [
                {
                    "key": occ.key,
                    "day": occ.study_day,
                    "answers": {"BLEED": "3", "BLEED_FAINT": "Y"},
                }
            ],
            "no_baseline": False,
        },
        study_day=occ.study_day,
        answered_at=answered,
        raised_at=answered,
        updated_at=answered,
    )
    return replace(base, **kw)


def screens(s: Samples) -> Iterable[Screen]:
    study = s.study
    opened = _alert(s)
    t0 = opened.raised_at
    acked = replace(
        opened, status="acknowledged", acked_by=1001, acked_at=t0 + timedelta(minutes=7)
    )
    sae = replace(
        acked,
        triage="sae",
        triaged_by=1001,
        triaged_at=t0 + timedelta(minutes=9),
        sae_aware_at=acked.acked_at,
        note="已电话联系，患者去急诊 / phoned, patient going to the ER",
        note_by=1001,
        note_at=t0 + timedelta(minutes=12),
    )
    reported = replace(
        sae, status="closed", sae_reported_at=t0 + timedelta(hours=5), sae_reported_by=1003
    )
    review = _alert(
        s,
        id=13,
        study_day=4,
        rule="BM_REVIEW",
        level="review",
        reason="Bowel movements 4 to 6 above baseline",
        details={
            "events": [
                {"key": "daily:3", "day": 3, "answers": {"BM": "7"}, "baseline": {"BM": 2.4}},
                {"key": "daily:4", "day": 4, "answers": {"BM": "8"}, "baseline": {"BM": 2.4}},
            ]
        },
    )
    several = _alert(
        s,
        id=17,
        details={
            "rules": ["BLEED_HEAVY", "PAIN_SEVERE", "HOSPITAL"],
            "reasons": [
                "Dripping blood or clots",
                "Pain 8 or more",
                "Emergency visit, hospital stay or transfusion (possible SAE)",
            ],
            "events": [
                {
                    "key": s.daily.key,
                    "day": s.daily.study_day,
                    "rules": ["BLEED_HEAVY", "PAIN_SEVERE", "HOSPITAL"],
                    "current": ["PAIN_SEVERE", "HOSPITAL"],
                    "answers": {"BLEED": "1", "PAIN": "9", "EVENTS": "HOSP"},
                    "was": {"BLEED": "3"},
                    "state": "draft",
                    "patient_changed": True,
                }
            ],
            "no_baseline": False,
        },
    )
    change = _alert(
        s,
        id=14,
        rule=DATA_CHANGE,
        level="review",
        reason=corrections.REASON,
        details={"events": [{"day": s.daily.study_day, "text": SAMPLE_TEXT}]},
    )
    missed = _alert(
        s,
        id=15,
        rule=MISSED,
        level="compliance",
        reason="Diaries missed in a row",
        answered_at=None,
        details={"events": [{"days": [5, 6, 7]}]},
    )
    blocked = _alert(
        s,
        id=16,
        rule=BLOCKED,
        level="compliance",
        reason="The patient blocked the bot",
        answered_at=None,
        details={"events": [{}], "no_baseline": False},
    )

    def card(alert: Alert, kind: str, after: timedelta) -> Any:
        return lambda _: alert_card(
            _, study, alert, kind=kind, now=alert.raised_at + after, names=NAMES
        )

    yield Screen(
        "escalation.safety",
        GROUP,
        "To the patient, right after a diary that raised an urgent alert",
        lambda _: safety_text(_, study),
    )
    yield Screen(
        "escalation.mistake_button",
        GROUP,
        "The button under the thank-you of every submitted diary",
        lambda _: ("…", corrections.mistake_button(_.locale, s.daily.id)),
    )
    for key, alert, kind, after, when in (
        ("urgent.open", opened, "alert", timedelta(minutes=2), "New urgent alert"),
        ("urgent.resend", opened, "resend", timedelta(minutes=15), "Re-sent, unacknowledged"),
        ("urgent.acked", acked, "alert", timedelta(minutes=8), "After Acknowledge: triage"),
        ("urgent.sae", sae, "alert", timedelta(minutes=13), "Possible SAE, with a note"),
        ("urgent.sae_reminder", sae, "sae", timedelta(hours=2), "Hourly SAE reminder"),
        ("urgent.reported", reported, "alert", timedelta(hours=5), "Reported to the sponsor"),
        (
            "urgent.one_card",
            several,
            "alert",
            timedelta(minutes=3),
            "One card for a diary's urgent findings, an answer changed before Submit",
        ),
        ("review.baseline", review, "alert", timedelta(minutes=1), "Review alert, updated"),
        ("review.data_change", change, "alert", timedelta(minutes=1), "Data-change request"),
        ("compliance.missed", missed, "alert", timedelta(minutes=1), "Diaries missed in a row"),
        ("compliance.blocked", blocked, "alert", timedelta(minutes=1), "Patient blocked the bot"),
    ):
        yield Screen(f"escalation.card.{key}", GROUP, when, card(alert, kind, after))

    now = t0 + timedelta(minutes=30)
    summary = PatientSummary(
        patient=s.patient,
        study_day=s.daily.study_day,
        last_diary=s.daily.local_date,
        compliance=compliance([(s.daily.study_day, s.daily.phase, "completed")], s.daily.study_day),
        open_alerts=2,
    )
    completed = replace(s.daily, status="completed", submitted_at=t0)
    detail = PatientDetail(
        summary, {}, [DayRow(completed, dict(s.answers), frozenset({"urgent"}))], [opened, review]
    )
    yield Screen(
        "escalation.alerts",
        GROUP,
        "/alerts (staff)",
        lambda _: staff_views.alerts_list(_, study, [opened, review], now),
    )
    yield Screen(
        "escalation.patients",
        GROUP,
        "/patients (staff)",
        lambda _: staff_views.patients_list(_, study, [summary]),
    )
    yield Screen(
        "escalation.patient",
        GROUP,
        "/patient RP-001 (staff)",
        lambda _: staff_views.patient_detail(_, study, detail, now),
    )
