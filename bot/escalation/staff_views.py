"""Texts of the staff commands: /alerts, /patients, /patient, /enroll (pure apart from `_`)."""

from __future__ import annotations

from datetime import datetime

from bot.domain.compliance import Ratio
from bot.domain.study import Study
from bot.escalation.overview import PatientDetail, PatientSummary, phase_at
from bot.escalation.store import Alert
from bot.escalation.views import AREA, LEVELS, list_line, number
from bot.i18n import N_, T
from bot.messenger import Buttons
from conversations.callbacks import make

MAX_LINES = 40  # a Telegram message holds 4096 characters
MAX_SHOW_BUTTONS = 10

STATUS_LABELS = {
    "invited": N_("invited, not linked yet"),
    "active": N_("active"),
    "paused": N_("paused"),
    "withdrawn": N_("withdrawn"),
    "completed": N_("completed"),
}
DAY_MARKS = {
    "completed": "✅",
    "missed": "❌",
    "scheduled": "⏳",
    "prompted": "⏳",
    "reminded": "⏳",
    "paused": "⏸",
    "withdrawn": "—",
}


def alerts_list(_: T, study: Study, alerts: list[Alert], now: datetime) -> tuple[str, Buttons]:
    if not alerts:
        return _("No open alerts."), []
    lines = [_("Open alerts, oldest first:"), ""]
    lines += [list_line(_, study, a, now) for a in alerts[:MAX_LINES]]
    if len(alerts) > MAX_LINES:
        lines.append(_("…and {count} more.", count=len(alerts) - MAX_LINES))
    buttons: Buttons = [
        [(_("Show #{id} {subject}", id=a.id, subject=a.subject), make(AREA, "show", a.id))]
        for a in alerts[:MAX_SHOW_BUTTONS]
    ]
    return "\n".join(lines), buttons


def ratio(_: T, r: Ratio) -> str:
    if r.percent is None:
        return "–"
    return _(
        "{completed}/{due} ({percent}%)",
        completed=r.completed,
        due=r.due,
        percent=round(r.percent),
    )


def phase_name(_: T, study: Study, day: int) -> str:
    phase = phase_at(study, day)
    if phase is not None:
        return _(phase.name)
    if day < min(p.first_day for p in study.phases):
        return _("before the diaries start")
    return _("diaries finished")


def summary_line(_: T, study: Study, s: PatientSummary) -> str:
    p = s.patient
    last = _.short_date(s.last_diary) if s.last_diary else _("none yet")
    parts = [
        p.subject,
        _("Day {day}", day=s.study_day),
        phase_name(_, study, s.study_day),
        _("last diary: {date}", date=last),
        _("7 days: {ratio}", ratio=ratio(_, s.compliance.last_7_days)),
        _("open alerts: {count}", count=s.open_alerts),
    ]
    if p.status != "active":
        parts.append(_(STATUS_LABELS.get(p.status, p.status)))
    if p.unreachable:
        parts.append(_("blocked the bot"))
    return " · ".join(parts)


def patients_list(_: T, study: Study, rows: list[PatientSummary]) -> str:
    if not rows:
        return _("No patients enrolled yet.")
    lines = [summary_line(_, study, s) for s in rows[:MAX_LINES]]
    if len(rows) > MAX_LINES:
        lines.append(_("…and {count} more.", count=len(rows) - MAX_LINES))
    return "\n".join(lines)


def _answers(study: Study, answers: dict[str, str]) -> str:
    """Item codes and stored values: compact, exact, the same in every language."""
    parts = []
    for item in study.items:
        raw = answers.get(item.code)
        if raw is None:
            continue
        if item.kind == "text":
            raw = "\u201c" + (raw if len(raw) <= 40 else raw[:39] + "…") + "\u201d"
        parts.append(f"{item.code} {raw}")
    return " · ".join(parts)


def patient_detail(_: T, study: Study, d: PatientDetail, now: datetime) -> str:
    s = d.summary
    lines = [summary_line(_, study, s)]
    lines.append(
        _(
            "Compliance: 7 days {week} · 30 days {month} · overall {overall}",
            week=ratio(_, s.compliance.last_7_days),
            month=ratio(_, s.compliance.last_30_days),
            overall=ratio(_, s.compliance.overall),
        )
    )
    if d.baseline:
        values = " · ".join(f"{code} {number(_, v)}" for code, v in d.baseline.items())
        lines.append(_("Baseline (mean): {values}", values=values))
    else:
        lines.append(
            _("No baseline diaries: worsening from baseline cannot be checked for this patient.")
        )
    if d.alerts:
        lines += ["", _("Open alerts:")]
        lines += [list_line(_, study, a, now) for a in d.alerts]
    lines += ["", _("Last 14 days:")]
    if not d.days:
        lines.append(_("No diaries yet."))
    for row in d.days:
        occ = row.occ
        mark = DAY_MARKS.get(occ.status, "?")
        day = _("Day {day}", day=occ.study_day)
        head = f"{day} · {_.short_date(occ.local_date)} · {mark}"
        if occ.status == "completed":
            body = _answers(study, row.answers)
        elif occ.status in ("missed", "paused", "withdrawn") and row.answers:
            # closed without Submit: the answers given so far are data (status incomplete)
            body = _("incomplete: {answers}", answers=_answers(study, row.answers))
        elif occ.status == "missed":
            body = _("missed")
        elif occ.status in ("scheduled", "prompted", "reminded"):
            body = _("open")
        else:
            body = _(STATUS_LABELS.get(occ.status, occ.status))
        flags = "".join(LEVELS[lv][0] for lv in ("urgent", "review") if lv in row.alert_levels)
        lines.append(f"{head} {body} {flags}".rstrip())
    legend = " · ".join(f"{it.code} = {_(it.short)}" for it in study.items)
    lines += ["", legend]
    return "\n".join(lines)
