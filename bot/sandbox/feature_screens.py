"""Follow-up's screens for /screens: /schedule, visit reminders, the closing message, the
notices of a pause, resumption, withdrawal or new Day 0, and the staff's digest and compliance
texts — drawn by the views in conversations/schedule_view.py, conversations/staff_schedule.py
and conversations/digest_view.py.

Also more escalation examples than bot/escalation/screens.py draws: a card for every rule of
the study (each with answers that meet the rule), the other states of a card, and the staff
lists empty or with patients before and after their diaries.

(Escalation keeps its own screens in bot/escalation/screens.py; a feature that adds a
`bot/<feature>/screens.py` can take these over.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.clock import iso
from bot.domain.compliance import compliance
from bot.domain.schedule import diary_occurrences, phase_for_day, visit_schedule
from bot.domain.study import Condition, Rule, Study
from bot.escalation import staff_views
from bot.escalation.overview import DayRow, PatientDetail, PatientSummary
from bot.escalation.views import BLOCKED, MISSED, alert_card
from bot.followup.compliance_report import summarise
from bot.followup.digest_data import DigestData, VisitSoon
from bot.followup.lifecycle import Change
from bot.followup.overview import Overview
from bot.sandbox.screens import SAMPLE_TEXT, Samples, Screen, bound, occ_row
from conversations import digest_view, schedule_view, staff_schedule
from storage.alerts import Alert

PATIENT_GROUP = "Follow-up"
STAFF_GROUP = "Follow-up: study team"
ALERT_GROUP = "Escalation: every rule and more alert states"
NAMES = {1001: "王芳 Wang Fang", 1003: "Dr Li"}
BASELINE = 1.0  # the sample patient's baseline mean of every item a rule compares with


def _overview(
    s: Samples, *, open_now: bool = False, missed: frozenset[int] = frozenset({-3})
) -> Overview:
    """/schedule's data on the sample diary's day; the diaries of the days in `missed` were
    missed, every other earlier one completed."""
    patient, occ = s.patient, s.daily
    now = occ.opens_at + timedelta(hours=1)
    rows = []
    for day in range(-7, occ.study_day):
        local = patient.injection_date + timedelta(days=day)
        phase = "baseline" if day < 0 else "daily"
        rows.append((local.isoformat(), phase, "missed" if day in missed else "completed"))
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
    yield from _schedule_variants(s)
    for v in visits[1:]:
        data = {
            "visit": v.code,
            "name": v.name,
            "target": v.target_date.isoformat(),
            "start": v.window_start.isoformat(),
            "end": v.window_end.isoformat(),
            "days_before": max(study.visit_reminder_days, default=1),
        }
        yield Screen(
            f"followup.visit_reminder.{v.code}",
            PATIENT_GROUP,
            f"Visit reminder before the {v.name} (day {v.day})",
            bound(schedule_view.visit_reminder_text, study, data),
        )
    yield from _staff_screens(s, ov)
    yield from _alert_screens(s)


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
        review_alerts=[
            ("RP-003", "Data-change request from the patient"),
            ("RP-005", "New medicine for bowel symptoms"),
        ],
    )
    quiet = DigestData(day, 6, 6, [], [], [], [])
    nothing_due = DigestData(day, 0, 0, [], [], [], [])
    only_new = DigestData(
        day, 0, 0, [], [], [], ["RP-006"], [("RP-003", "Data-change request from the patient")]
    )
    for key, data, when in (
        ("full", full, "Daily digest at the study's digest time, with something to act on"),
        ("quiet", quiet, "Daily digest when every diary due was completed"),
        ("none_due", nothing_due, "Daily digest when no diary was due"),
        ("new_only", only_new, "Daily digest when no diary was due but there is news"),
    ):
        yield Screen(
            f"followup.digest.{key}",
            STAFF_GROUP,
            when,
            bound(digest_view.digest_text, data),
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
    lapsed = _overview(s, missed=frozenset({-3, s.daily.study_day - 1})).compliance
    for status in ("paused", "invited", "completed"):
        other = replace(lapsed if status == "paused" else comp, status=status)
        yield Screen(
            f"followup.compliance.detail.{status}",
            STAFF_GROUP,
            f"/compliance RP-001 when the patient is {status}",
            bound(staff_schedule.compliance_detail, other, phases),
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


def _schedule_variants(s: Samples) -> Iterable[Screen]:
    """/schedule's other wordings of the recent diaries: none yet, the last one missed, the
    last one done after a missed one."""
    study, patient = s.study, s.patient
    day = s.daily.study_day
    occs = diary_occurrences(study, patient.injection_date, patient.timezone, patient.prompt_time)
    first = occ_row(occs[0], 1, "scheduled")
    now = first.opens_at - timedelta(hours=2)
    visits = visit_schedule(study, patient.injection_date)
    fresh = Overview(
        patient=patient,
        day=first.study_day,
        phase=phase_for_day(study, first.study_day),
        open_now=None,
        next_occ=first,
        next_visit=visits[0] if visits else None,
        compliance=summarise(patient, [], now),
    )
    for key, ov, when in (
        ("first_day", fresh, "/schedule before the first diary"),
        (
            "last_missed",
            _overview(s, missed=frozenset({day - 1})),
            "/schedule after a missed diary",
        ),
        (
            "after_missed",
            _overview(s, missed=frozenset({day - 2})),
            "/schedule after one diary done following a missed one",
        ),
    ):
        yield Screen(
            f"followup.schedule.{key}",
            PATIENT_GROUP,
            when,
            bound(schedule_view.schedule_text, study, ov),
        )


# ------------------------------------------------------------------ more escalation examples
def _alert(s: Samples, **kw: Any) -> Alert:
    """An open alert of the sample patient, raised 40 minutes after the diary opened."""
    at = s.daily.opens_at + timedelta(minutes=40)
    base: dict[str, Any] = {
        "id": 21,
        "patient_id": s.patient.id,
        "subject": s.patient.subject,
        "rule": None,
        "level": None,
        "reason": None,
        "status": "open",
        "details": {"events": [], "no_baseline": False},
        "study_day": s.daily.study_day,
        "answered_at": at,
        "raised_at": at,
        "updated_at": at,
    }
    return Alert(**{**base, **kw})


def _meeting(study: Study, cond: Condition) -> tuple[str, float | None]:
    """An answer that meets `cond`, and the baseline mean it is compared with (if any)."""
    item = study.item(cond.item)
    if cond.in_:
        return cond.in_[0], None
    if cond.any_:
        return cond.any_[0], None
    whole = item.kind != "number"
    top = (
        item.max if item.max is not None else float(max((o.code for o in item.options), default=0))
    )
    if cond.above_baseline_gte is not None:
        base = min(BASELINE, float(top) - cond.above_baseline_gte)
        value = base + cond.above_baseline_gte
        return (str(int(value)) if whole else str(value)), base
    if cond.gte is not None:
        return (str(int(cond.gte)) if whole else str(cond.gte)), None
    if cond.lt is not None:
        return str(int(cond.lt) - 1) if whole else str(cond.lt - 0.5), None
    return str(item.min or 0), None


def _event(study: Study, rule: Rule, day: int, key: str) -> dict[str, Any]:
    answers: dict[str, str] = {}
    baseline: dict[str, float] = {}
    for cond in rule.conditions:
        answers[cond.item], base = _meeting(study, cond)
        if base is not None:
            baseline[cond.item] = base
    event: dict[str, Any] = {"key": key, "day": day, "answers": answers}
    if baseline:
        event["baseline"] = baseline
    return event


def _rule_alert(s: Samples, rule: Rule, alert_id: int) -> Alert:
    """The alert `rule` raises: on the sample diary's day (or within the rule's days), with as
    many diaries in a row as the rule needs (the first of them on the sample diary's day)."""
    day = s.daily.study_day + rule.consecutive - 1
    for cond in rule.conditions:
        if cond.days is not None:
            day = max(cond.days[0], min(cond.days[1], day))
    days = range(day - rule.consecutive + 1, day + 1)
    events = [_event(s.study, rule, d, f"daily:{d}") for d in days]
    return _alert(
        s,
        id=alert_id,
        rule=rule.code,
        level=rule.level,
        reason=rule.reason,
        study_day=day,
        details={"events": events, "no_baseline": False},
    )


def _alert_screens(s: Samples) -> Iterable[Screen]:
    study = s.study

    def card(alert: Alert, now: datetime, kind: str = "alert") -> Any:
        return lambda _: alert_card(_, study, alert, kind=kind, now=now, names=NAMES)

    for n, rule in enumerate(study.rules):
        alert = _rule_alert(s, rule, 30 + n)
        yield Screen(
            f"escalation.rule.{rule.code}",
            ALERT_GROUP,
            f"New {rule.level} alert of rule {rule.code}"
            + (f" ({rule.consecutive} diaries in a row)" if rule.consecutive > 1 else ""),
            card(alert, alert.raised_at + timedelta(minutes=2)),
        )
    first = (
        _rule_alert(s, study.rules[0], 30)
        if study.rules
        else _alert(s, rule="SAMPLE", level="urgent", reason=SAMPLE_TEXT)
    )
    t0 = first.raised_at
    contacted = replace(
        first,
        status="acknowledged",
        acked_by=1001,
        acked_at=t0 + timedelta(minutes=5),
        contacted_by=1001,
        contacted_at=t0 + timedelta(minutes=20),
    )
    missed = _alert(
        s,
        id=45,
        rule=MISSED,
        level="compliance",
        reason="Diaries missed in a row",
        answered_at=None,
        status="closed",
        closed_at=t0 + timedelta(hours=20),
        details={"events": [{"days": [5, 6, 7]}]},
    )
    back = _alert(
        s,
        id=46,
        rule=BLOCKED,
        level="compliance",
        reason="The patient blocked the bot",
        answered_at=None,
        details={"events": [{}], "reachable_at": iso(t0 + timedelta(hours=3))},
    )
    for key, alert, after, when in (
        (
            "contacted",
            contacted,
            timedelta(minutes=21),
            "After Patient contacted (not yet triaged)",
        ),
        (
            "closed_unacknowledged",
            missed,
            timedelta(hours=20),
            "A compliance alert closed by itself (the patient filled in a diary again)",
        ),
        ("reachable_again", back, timedelta(hours=3), "The patient who blocked the bot is back"),
    ):
        yield Screen(f"escalation.card.{key}", ALERT_GROUP, when, card(alert, t0 + after))

    now = t0 + timedelta(hours=2)
    sae = replace(
        contacted,
        id=47,
        triage="sae",
        triaged_by=1001,
        triaged_at=t0 + timedelta(minutes=25),
        sae_aware_at=t0 + timedelta(minutes=5),
    )
    old = replace(missed, id=44, status="open", closed_at=None, raised_at=now - timedelta(days=3))
    waiting = replace(contacted, id=48, contacted_by=None, contacted_at=None)
    listed = [old, sae, waiting, replace(first, id=49, raised_at=now - timedelta(minutes=3))]
    yield Screen(
        "escalation.alerts.states",
        ALERT_GROUP,
        "/alerts with alerts in every state",
        lambda _: staff_views.alerts_list(_, study, listed, now),
    )
    yield Screen(
        "escalation.alerts.none",
        ALERT_GROUP,
        "/alerts when no alert is open",
        lambda _: staff_views.alerts_list(_, study, [], now),
    )
    yield Screen(
        "escalation.patients.none",
        ALERT_GROUP,
        "/patients before anyone is enrolled",
        lambda _: staff_views.patients_list(_, study, []),
    )
    first_day = min(p.first_day for p in study.phases)
    last_day = max(p.last_day for p in study.phases)
    invited = PatientSummary(
        patient=replace(s.patient, subject="RP-007", status="invited", chat_id=None),
        study_day=first_day - 3,
        last_diary=None,
        compliance=compliance([], first_day - 3),
        open_alerts=0,
    )
    done = PatientSummary(
        patient=replace(s.patient, subject="RP-008", status="completed"),
        study_day=last_day + 1,
        last_diary=s.patient.injection_date + timedelta(days=last_day),
        compliance=compliance([(last_day, "weekly", "completed")], last_day + 1),
        open_alerts=0,
    )
    yield Screen(
        "escalation.patients.ends",
        ALERT_GROUP,
        "/patients with a patient not yet started and one whose diaries are over",
        lambda _: staff_views.patients_list(_, study, [invited, done]),
    )
    new = PatientDetail(invited, {}, [], [])
    yield Screen(
        "escalation.patient.new",
        ALERT_GROUP,
        "/patient RP-007 for a patient who has not started yet",
        lambda _: staff_views.patient_detail(_, study, new, now),
    )
    baseline = {c.item: BASELINE for r in study.rules for c in r.conditions if c.needs_baseline}
    day = s.daily.study_day
    filled = replace(s.daily, status="completed", submitted_at=s.daily.opens_at)
    summary = PatientSummary(
        patient=s.patient,
        study_day=day,
        last_diary=s.daily.local_date,
        compliance=compliance([(day, s.daily.phase, "completed")], day),
        open_alerts=0,
    )
    with_baseline = PatientDetail(summary, baseline, [DayRow(filled, dict(s.answers))], [])
    yield Screen(
        "escalation.patient.baseline",
        ALERT_GROUP,
        "/patient RP-001 once the baseline diaries are done (no open alert)",
        lambda _: staff_views.patient_detail(_, study, with_baseline, now),
    )
