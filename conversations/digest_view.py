"""The coordinator digest's text, in the staff member's language (sent by
bot/followup/digest.py; the data is bot/followup/digest_data.py)."""

from __future__ import annotations

from bot.followup.digest_data import DigestData
from bot.i18n import T

LIST_LIMIT = 20  # names listed in one digest section before "and N more"


def _more(_: T, names: list[str], limit: int = LIST_LIMIT) -> str:
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += " " + _("and {n} more", n=len(names) - limit)
    return shown


def digest_text(_: T, d: DigestData) -> str:
    day = _.date(d.local_date)
    if d.quiet:
        if d.due:
            return "☀️ " + _(
                "Daily summary, {date}: every diary due yesterday was completed ({n}). "
                "Nothing needs your attention.",
                date=day,
                n=d.due,
            )
        return "☀️ " + _(
            "Daily summary, {date}: no diaries were due yesterday. Nothing needs your attention.",
            date=day,
        )
    lines = ["📋 " + _("Daily summary, {date}", date=day)]
    lines.append(
        _("Yesterday: {done} of {due} diaries completed.", done=d.completed, due=d.due)
        if d.due
        else _("Yesterday: no diaries were due.")
    )
    if d.not_completed:
        labels = {"missed": _("missed"), "open": _("still open")}
        names = [f"{s} ({labels[state]})" for s, state in d.not_completed]
        lines.append(_("Not completed: {names}", names=_more(_, names)))
    if d.missed_runs:
        names = [f"{s} ({n})" for s, n in d.missed_runs]
        lines.append(
            "⚠️ "
            + _(
                "Missed {n} or more in a row: {names}",
                n=d.missed_threshold,
                names=_more(_, names),
            )
        )
    if d.visits:
        lines.append("🏥 " + _("Visits in the next 7 days:"))
        for v in d.visits[:LIST_LIMIT]:
            lines.append(
                "• "
                + _(
                    "{subject}: {visit} on {date} (window {start} to {end})",
                    subject=v.subject,
                    visit=_(v.visit),
                    date=_.short_date(v.target),
                    start=_.short_date(v.start),
                    end=_.short_date(v.end),
                )
            )
        if len(d.visits) > LIST_LIMIT:
            lines.append(_("and {n} more", n=len(d.visits) - LIST_LIMIT))
    if d.new_patients:
        lines.append("🆕 " + _("New enrolments: {names}", names=_more(_, d.new_patients)))
    if d.review_alerts:
        lines.append("🔔 " + _("Review alerts not yet acknowledged: {n}", n=d.open_alerts))
        listed = [f"{subject} ({_(reason)})" for subject, reason in d.review_alerts]
        lines.append(_more(_, listed))
    return "\n".join(lines)
