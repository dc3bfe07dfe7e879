"""Follow-up's screens for /screens: /schedule, visit reminders, the closing message, the
notices of a pause, resumption, withdrawal or new Day 0, and the staff's digest and compliance
texts — drawn by the views in conversations/schedule_view.py and conversations/staff_schedule.py.

(Escalation keeps its own screens in bot/escalation/screens.py; a feature that adds a
`bot/<feature>/screens.py` can take these over.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta

from bot.domain.schedule import phase_for_day, visit_schedule
from bot.followup.compliance_report import summarise
from bot.followup.digest import DigestData, VisitSoon
from bot.followup.lifecycle import Change
from bot.followup.overview import Overview
from bot.sandbox.screens import Samples, Screen, bound
from conversations import schedule_view, staff_schedule

PATIENT_GROUP = "Follow-up"
STAFF_GROUP = "Follow-up: study team"


def _overview(s: Samples, *, open_now: bool = False) -> Overview:
    patient, occ = s.patient, s.daily
    now = occ.opens_at + timedelta(hours=1)
    rows = []
    for day in range(-7, occ.study_day):
        local = patient.injection_date + timedelta(days=day)
        phase = "baseline" if day < 0 else "daily"
        rows.append((local.isoformat(), phase, "missed" if day == -3 else "completed"))
    comp = summarise(patient, rows, now)
    visits = visit_schedule(s.study, patient.injection_date)
    return Overview(
        patient=patient,
        day=occ.study_day,
        phase=phase_for_day(s.study, occ.study_day),
        open_now=occ if open_now else None,
        next_occ=s.next_daily,
        next_visit=visits[0] if visits else None,
        compliance=comp,
    )


def screens(s: Samples) -> Iterable[Screen]:
    study, patient = s.study, s.patient
    ov = _overview(s)
    ov_open = _overview(s, open_now=True)
    yield Screen(
        "followup.schedule",
        PATIENT_GROUP,
        "/schedule when no diary is open",
        lambda _: schedule_view.schedule_text(_, study, ov),
    )
    yield Screen(
        "followup.schedule.open",
        PATIENT_GROUP,
        "/schedule while today's diary is open",
        lambda _: schedule_view.schedule_text(_, study, ov_open),
    )
    for status in ("paused", "withdrawn", "completed"):
        other = replace(ov, patient=replace(patient, status=status))
        yield Screen(
            f"followup.schedule.{status}",
            PATIENT_GROUP,
            f"/schedule when the follow-up is {status}",
            bound(schedule_view.schedule_text, study, other),
        )
    visits = visit_schedule(study, patient.injection_date)
    if visits:
        v = visits[0]
        for days_before in (3, 1):
            data = {
                "visit": v.code,
                "name": v.name,
                "target": v.target_date.isoformat(),
                "start": v.window_start.isoformat(),
                "end": v.window_end.isoformat(),
                "days_before": days_before,
            }
            yield Screen(
                f"followup.visit_reminder.{days_before}",
                PATIENT_GROUP,
                f"Visit reminder, {days_before} day(s) before the visit",
                bound(schedule_view.visit_reminder_text, study, data),
            )
    yield Screen(
        "followup.closing",
        PATIENT_GROUP,
        "On the study's closing day: the end of the diary follow-up",
        lambda _: schedule_view.closing_text(_, study),
    )
    yield Screen(
        "followup.notice.paused",
        PATIENT_GROUP,
        "The study team paused the patient's diary",
        lambda _: schedule_view.paused_notice(_, study),
    )
    yield Screen(
        "followup.notice.resumed",
        PATIENT_GROUP,
        "The study team resumed the diary (no diary open right now)",
        lambda _: schedule_view.resumed_notice(_, patient, s.next_daily, None),
    )
    yield Screen(
        "followup.notice.resumed.open",
        PATIENT_GROUP,
        "The study team resumed the diary while today's diary is open",
        lambda _: schedule_view.resumed_notice(_, patient, s.next_daily, s.daily),
    )
    yield Screen(
        "followup.notice.withdrawn",
        PATIENT_GROUP,
        "The study team withdrew the patient from the diary",
        lambda _: schedule_view.withdrawn_notice(_, study),
    )
    yield Screen(
        "followup.notice.reanchored",
        PATIENT_GROUP,
        "The study team moved the patient's Day 0",
        lambda _: schedule_view.reanchored_notice(_, patient, s.next_daily),
    )
    yield from _staff_screens(s, ov)


def _staff_screens(s: Samples, ov: Overview) -> Iterable[Screen]:
    day = s.daily.local_date
    full = DigestData(
        local_date=day,
        completed=5,
        due=7,
        not_completed=[("RP-002", "missed"), ("RP-005", "open")],
        missed_runs=[("RP-002", 3)],
        visits=[
            VisitSoon(
                "RP-004",
                "Month 1 visit",
                day + timedelta(days=3),
                day - timedelta(days=4),
                day + timedelta(days=10),
            )
        ],
        new_patients=["RP-006"],
        open_alerts=2,
    )
    quiet = DigestData(day, 6, 6, [], [], [], [])
    nothing_due = DigestData(day, 0, 0, [], [], [], [])
    for key, data, when in (
        ("full", full, "Daily digest at the study's digest time, with something to act on"),
        ("quiet", quiet, "Daily digest when every diary due was completed"),
        ("none_due", nothing_due, "Daily digest when no diary was due"),
    ):
        yield Screen(
            f"followup.digest.{key}",
            STAFF_GROUP,
            when,
            bound(staff_schedule.digest_text, data),
        )
    comp = ov.compliance
    yield Screen(
        "followup.compliance.line",
        STAFF_GROUP,
        "/compliance: one line per patient",
        lambda _: staff_schedule.compliance_line(_, comp, s.study.missed_in_a_row_alert),
    )
    phases = {p.code: p.name for p in s.study.phases}
    yield Screen(
        "followup.compliance.detail",
        STAFF_GROUP,
        "/compliance RP-001",
        lambda _: staff_schedule.compliance_detail(_, comp, phases),
    )
    subject = s.patient.subject
    changes = {
        "pause": Change(subject, "pause", "active", "paused", 3, True),
        "resume": Change(subject, "resume", "paused", "active", 3, True),
        "withdraw": Change(subject, "withdraw", "active", "withdrawn", 12, False),
        "reanchor": Change(
            subject,
            "reanchor",
            "active",
            "active",
            40,
            True,
            {
                "old_date": s.patient.injection_date.isoformat(),
                "new_date": (s.patient.injection_date + timedelta(days=7)).isoformat(),
                "removed": 40,
                "added": 40,
            },
        ),
    }
    for action, change in changes.items():
        yield Screen(
            f"followup.change.{action}",
            STAFF_GROUP,
            f"/{action} done"
            + (" (the patient could not be messaged)" if not change.notified else ""),
            bound(staff_schedule.change_text, change),
        )
        yield Screen(
            f"followup.usage.{action}",
            STAFF_GROUP,
            f"/{action} written wrongly",
            bound(staff_schedule.usage, action),
        )
