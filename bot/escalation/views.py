"""What an alert looks like to a member of the study team: text and buttons, in their language.

Every copy of an alert (each coordinator's chat, the group, re-sends, SAE reminders) is rendered
from the stored alert by `alert_card`, so editing every copy after a state change is simply
rendering again. Pure apart from the translator: `now` is a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import from_iso
from bot.domain.study import Study
from bot.i18n import N_, T
from bot.messenger import Buttons
from conversations.callbacks import make
from conversations.diary_view import value_text
from storage.alerts import Alert

AREA = "al"  # callback area of the staff alert buttons

# Rule codes of alerts that do not come from the study's [[rules]].
MISSED = "MISSED"
BLOCKED = "BLOCKED"
DATA_CHANGE = "DATA_CHANGE"
WEB_LOCKED = "WEB_LOCKED"  # five wrong years of birth on a web diary link (bot/web/links.py)
NON_CLINICAL = (MISSED, BLOCKED, DATA_CHANGE, WEB_LOCKED)

LEVELS = {
    "urgent": ("🔴", N_("URGENT")),
    "review": ("🟠", N_("Review")),
    "compliance": ("🔵", N_("Compliance")),
}

# Triage choices: callback code → (stored value, button label).
TRIAGE_CHOICES = {
    "n": ("not_ae", N_("Not an AE")),
    "a": ("ae", N_("AE, not serious")),
    "s": ("sae", N_("Possible SAE")),
}
CONTACTED = "c"
TRIAGE_LABELS = {value: label for value, label in TRIAGE_CHOICES.values()}


def number(_: T, value: float) -> str:
    return _.number(round(value, 1))


def elapsed(_: T, delta: timedelta) -> str:
    """A duration as staff read it at a glance: "5 min", "1 h 10 min", "3 d 4 h"."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return _("{minutes} min", minutes=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _("{hours} h {minutes} min", hours=hours, minutes=minutes)
    days, hours = divmod(hours, 24)
    return _("{days} d {hours} h", days=days, hours=hours)


def when(_: T, dt: datetime, now: datetime, tz: str) -> str:
    """Clock time in the study's time zone; with the date unless it is today."""
    zone = ZoneInfo(tz)
    if dt.astimezone(zone).date() == now.astimezone(zone).date():
        return _.clock(dt, tz)
    return f"{_.short_date(dt.astimezone(zone).date())} {_.clock(dt, tz)}"


def hours_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _answer_lines(_: T, study: Study, event: Mapping[str, Any]) -> list[str]:
    lines = []
    was = event.get("was", {})
    for code, raw in event.get("answers", {}).items():
        try:
            item = study.item(code)
        except KeyError:
            lines.append(f"• {code}: {raw}")
            continue
        label = _(item.short)
        value = value_text(_, item, raw)
        if code in was:
            lines.append(
                "• "
                + _(
                    "{label}: {value} (first reported: {was})",
                    label=label,
                    value=value,
                    was=value_text(_, item, was[code]),
                )
            )
            continue
        lines.append("• " + _("{label}: {value}", label=label, value=value))
    baseline = event.get("baseline", {})
    for code, mean in baseline.items():
        try:
            short = _(study.item(code).short)
        except KeyError:
            short = code
        lines.append(_("Baseline (median) {item}: {value}", item=short, value=number(_, mean)))
    return lines


def _body(_: T, study: Study, alert: Alert, now: datetime) -> list[str]:
    tz = study.timezone
    events = alert.events
    lines: list[str] = []
    if alert.rule == DATA_CHANGE:
        lines.append(_("The patient says a submitted diary contains a mistake:"))
        for ev in events:
            lines.append(
                _("Diary of Day {day}: \u201c{text}\u201d", day=ev.get("day"), text=ev.get("text"))
            )
        lines.append(
            _("Correct it with: diarybot entry correct (the original stays in the audit).")
        )
    elif alert.rule == MISSED:
        latest = events[-1] if events else {}
        days = ", ".join(str(d) for d in latest.get("days", []))
        lines.append(_("Missed diaries: Day {days}", days=days))
    elif alert.rule == BLOCKED:
        lines.append(
            _(
                "The patient blocked the bot: no diary or reminder reaches them any more. "
                "Please phone the patient."
            )
        )
        back = alert.details.get("reachable_at")
        if back:
            lines.append(
                _(
                    "✅ The patient wrote to the bot again at {time}: reachable again.",
                    time=when(_, from_iso(back), now, tz),
                )
            )
    elif events:
        latest = events[-1]
        lines += _answer_lines(_, study, latest)
        lines += _diary_notes(_, study, alert, now)
        if len(events) > 1:
            earlier = ", ".join(str(ev.get("day")) for ev in events[:-1])
            lines.append(
                _(
                    "Updated: reported again; also on Day {days} ({count} diaries).",
                    days=earlier,
                    count=len(events),
                )
            )
    if alert.details.get("no_baseline"):
        lines.append(
            _(
                "No baseline (fewer than {n} diaries before Day 0): worsening from baseline "
                "cannot be checked for this patient; the fallback rules apply.",
                n=study.baseline_min_diaries,
            )
        )
    if alert.answered_at is not None:
        lines.append(
            _(
                "Answered at {time} ({elapsed} ago)",
                time=when(_, alert.answered_at, now, tz),
                elapsed=elapsed(_, now - alert.answered_at),
            )
        )
    return lines


def reasons(alert: Alert) -> list[str]:
    """The reasons (msgids) of an alert: every finding on a diary card, in study rule order."""
    return list(alert.details.get("reasons") or [alert.reason])


def _rule_reasons(_: T, study: Study, codes: Sequence[str]) -> str:
    out = []
    for code in codes:
        rule = study.rule(code)
        out.append(_(rule.reason) if rule is not None else code)
    return "; ".join(out)


def _diary_notes(_: T, study: Study, alert: Alert, now: datetime) -> list[str]:
    """What happened to the diaries behind a card since they were reported: an answer changed
    before Submit or corrected by the site (never withdrawn silently), a diary not submitted."""
    lines: list[str] = []
    for ev in alert.events:
        reported = list(ev.get("rules", []))
        gone = [r for r in reported if r not in ev.get("current", reported)]
        if not gone:
            continue
        if ev.get("corrected_at"):
            text = N_("✏️ Day {day}, after a site correction, no longer meets: {reasons}.")
        elif ev.get("patient_changed"):
            text = N_(
                "✏️ Day {day}: the patient changed the answer before submitting; it no longer "
                "meets: {reasons}. Please still decide on this alert."
            )
        else:
            text = N_("✏️ Day {day} no longer meets: {reasons}.")
        lines.append(_(text, day=ev.get("day"), reasons=_rule_reasons(_, study, gone)))
    state = alert.events[-1].get("state") if alert.events else None
    if state == "draft":
        lines.append(_("The diary is not submitted yet: these are the answers so far."))
    elif state == "incomplete":
        lines.append(_("The diary closed without being submitted (incomplete)."))
    aware = alert.details.get("aware_at")
    if aware:
        lines.append(
            _(
                "Found by a site correction at {time} (time of awareness).",
                time=when(_, from_iso(aware), now, study.timezone),
            )
        )
    return lines


def _state_lines(
    _: T, study: Study, alert: Alert, now: datetime, names: Mapping[int, str], reminder: bool
) -> list[str]:
    tz = study.timezone

    def who(staff_id: int | None) -> str:
        if staff_id is None:
            return "?"
        return names.get(staff_id, f"#{staff_id}")

    lines: list[str] = []
    if alert.status == "open":
        lines.append(_("⏳ Waiting for acknowledgement"))
        return lines
    if alert.status == "closed" and alert.acked_at is None:
        lines.append(_("Closed without acknowledgement: no longer needed."))
    if alert.acked_at is not None:
        lines.append(
            _(
                "✅ Acknowledged by {name} at {time}",
                name=who(alert.acked_by),
                time=when(_, alert.acked_at, now, tz),
            )
        )
    if alert.contacted_at is not None:
        lines.append(
            _(
                "📞 Patient contacted by {name} at {time}",
                name=who(alert.contacted_by),
                time=when(_, alert.contacted_at, now, tz),
            )
        )
    if alert.triage is not None and alert.triaged_at is not None:
        lines.append(
            _(
                "Triage: {triage} ({name}, {time})",
                triage=_(TRIAGE_LABELS[alert.triage]),
                name=who(alert.triaged_by),
                time=when(_, alert.triaged_at, now, tz),
            )
        )
    if alert.sae_aware_at is not None:
        limit = hours_text(study.sae_report_within_hours)
        lines.append(
            _("Aware since {time}", time=when(_, alert.sae_aware_at, now, tz)),
        )
        if alert.sae_reported_at is None:
            if not reminder:  # a reminder says it in its first line
                lines.append(
                    _(
                        "⏰ Not yet reported to the sponsor: {elapsed} of {hours} h",
                        elapsed=elapsed(_, now - alert.sae_aware_at),
                        hours=limit,
                    )
                )
        else:
            lines.append(
                _(
                    "Reported to the sponsor by {name} at {time} ({elapsed} after awareness)",
                    name=who(alert.sae_reported_by),
                    time=when(_, alert.sae_reported_at, now, tz),
                    elapsed=elapsed(_, alert.sae_reported_at - alert.sae_aware_at),
                )
            )
    if alert.note:
        lines.append(_("📝 Note ({name}): {note}", name=who(alert.note_by), note=alert.note))
    return lines


def _prefix(_: T, study: Study, alert: Alert, kind: str, now: datetime) -> list[str]:
    if kind == "resend" and alert.status == "open":
        return [
            _(
                "🔁 Not acknowledged for {elapsed}",
                elapsed=elapsed(_, now - alert.raised_at),
            )
        ]
    if kind == "sae" and alert.sae_pending and alert.sae_aware_at is not None:
        return [
            _(
                "⏰ Possible SAE not yet reported to the sponsor: {elapsed} of {hours} h",
                elapsed=elapsed(_, now - alert.sae_aware_at),
                hours=hours_text(study.sae_report_within_hours),
            )
        ]
    return []


def buttons(_: T, alert: Alert) -> Buttons:
    """The actions that make sense in the alert's current state (and nothing else)."""
    if alert.status == "open":
        return [[(_("Acknowledge"), make(AREA, "ack", alert.id))]]
    rows: Buttons = []
    if alert.status == "acknowledged" and alert.triage is None:
        choices = [
            (_(label), make(AREA, "tri", alert.id, code))
            for code, (_value, label) in TRIAGE_CHOICES.items()
        ]
        rows.append(choices[:2])
        row = [choices[2]]
        if alert.contacted_at is None:
            row.append((_("Patient contacted"), make(AREA, "tri", alert.id, CONTACTED)))
        rows.append(row)
    if alert.sae_pending:
        rows.append([(_("Reported to sponsor"), make(AREA, "sae", alert.id))])
    rows.append([(_("Add note"), make(AREA, "note", alert.id))])
    return rows


def alert_card(
    _: T,
    study: Study,
    alert: Alert,
    *,
    kind: str,
    now: datetime,
    names: Mapping[int, str],
    added: Sequence[str] = (),
) -> tuple[str, Buttons]:
    """One copy of an alert. `kind`: alert | resend | sae | show (decides the first line).
    `added`: the findings (rule codes) that just joined the card, when this copy is sent to
    notify about them (the first line says what was added)."""
    icon, level = LEVELS.get(alert.level, ("•", alert.level))
    lines = _prefix(_, study, alert, kind, now)
    if added:
        lines.append(_("➕ New on this alert: {reasons}", reasons=_rule_reasons(_, study, added)))
    lines.append(f"{icon} {_(level)} · " + _("alert #{id}", id=alert.id))
    day = (
        _("Subject {subject} · Day {day}", subject=alert.subject, day=alert.study_day)
        if alert.study_day is not None
        else _("Subject {subject}", subject=alert.subject)
    )
    lines.append(day)
    lines += [_(reason) for reason in reasons(alert)]
    lines += _body(_, study, alert, now)
    lines.append("")
    lines += _state_lines(_, study, alert, now, names, reminder=kind == "sae")
    return "\n".join(lines), buttons(_, alert)


def list_line(_: T, study: Study, alert: Alert, now: datetime) -> str:
    """One line of /alerts: level, subject, day, reason, age, state."""
    icon, _level = LEVELS.get(alert.level, ("•", alert.level))
    if alert.status == "open":
        state = _("waiting for acknowledgement")
    elif alert.sae_pending:
        state = _("possible SAE, not yet reported")
    else:
        state = _("acknowledged, awaiting triage")
    parts = [f"{icon} #{alert.id} {alert.subject}"]
    if alert.study_day is not None:
        parts.append(_("Day {day}", day=alert.study_day))
    parts += [
        "; ".join(_(reason) for reason in reasons(alert)),
        _("raised {elapsed} ago", elapsed=elapsed(_, now - alert.raised_at)),
        state,
    ]
    return " · ".join(parts)


def safety_text(_: T, study: Study) -> str:
    """The study's approved patient safety message for an urgent alert: no diagnosis, no grade.

    The text itself is the ethics-approved one from the study file (``[safety]``, per language,
    versioned), not a catalog entry; only the phone line is ours."""
    return "\n".join(
        [
            study.safety.text(_.locale),
            _("Study team phone: {phone}", phone=study.contact_phone),
        ]
    )
