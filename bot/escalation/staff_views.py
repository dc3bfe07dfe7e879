"""Texts of the staff commands: /alerts, /patients, /patient, /enroll (pure apart from `_`).

A list longer than one Telegram message (4,096 UTF-16 code units) is split by length, never
mid-line, into pages with Previous / Next buttons (`pg:<list>:<page>[:<subject>]`); a line
count would not do: a Chinese or an English line differ threefold in length.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from bot.domain.compliance import Ratio
from bot.domain.study import Study
from bot.escalation.overview import PatientDetail, PatientSummary, phase_at
from bot.escalation.views import AREA, LEVELS, list_line, number
from bot.i18n import N_, T
from bot.messenger import Buttons
from conversations.callbacks import make
from storage.alerts import Alert

MAX_SHOW_BUTTONS = 10
PAGE_AREA = "pg"
# Telegram refuses a text over 4,096 UTF-16 code units; a page of lines stays under this, which
# leaves room for the "Page 2 of 3" line.
PAGE_LIMIT = 3900
LISTS = ("al", "pt", "pd")  # /alerts, /patients, /patient RP-001
Page = tuple[str, Buttons]


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (an emoji or a rare CJK character counts two)."""
    return len(text.encode("utf-16-le")) // 2


def split_pages(head: list[str], lines: list[str], limit: int = PAGE_LIMIT) -> list[list[int]]:
    """Indexes of `lines` on each page: whole lines, in order, each page with `head` at most
    `limit` long (a single longer line is cut to fit). Always at least one page."""
    base = utf16_len("\n".join(head))
    pages: list[list[int]] = [[]]
    used = base
    for i, line in enumerate(lines):
        size = utf16_len(line) + 1
        if pages[-1] and used + size > limit:
            pages.append([])
            used = base
        pages[-1].append(i)
        used += size
    return pages


def _fit(line: str, limit: int) -> str:
    if utf16_len(line) <= limit:
        return line
    while utf16_len(line) > limit - 1:
        line = line[: -max(1, (utf16_len(line) - limit) // 2)]
    return line + "…"


def paged(
    _: T,
    head: list[str],
    lines: list[str],
    data: Callable[[int], str],
    extra: Callable[[list[int]], Buttons] | None = None,
) -> list[Page]:
    """Every page's text and buttons: `extra(indexes)` per page, then Previous / Next."""
    room = PAGE_LIMIT - utf16_len("\n".join(head)) - 1
    lines = [_fit(line, room) for line in lines]
    groups = split_pages(head, lines)
    out: list[Page] = []
    for n, idx in enumerate(groups):
        body = head + [lines[i] for i in idx]
        if len(groups) > 1:
            body += ["", _("Page {page} of {pages}", page=n + 1, pages=len(groups))]
        buttons: Buttons = list(extra(idx)) if extra else []
        nav = []
        if n > 0:
            nav.append((_("\u2039 Previous"), data(n - 1)))
        if n < len(groups) - 1:
            nav.append((_("Next \u203a"), data(n + 1)))
        if nav:
            buttons.append(nav)
        out.append(("\n".join(body), buttons))
    return out


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


def alert_pages(_: T, study: Study, alerts: list[Alert], now: datetime) -> list[Page]:
    """/alerts, page by page: each page's alerts have their Show buttons (at most 10)."""
    if not alerts:
        return [(_("No open alerts."), [])]

    def show(idx: list[int]) -> Buttons:
        shown = [alerts[i] for i in idx[:MAX_SHOW_BUTTONS]]
        return [
            [(_("Show #{id} {subject}", id=a.id, subject=a.subject), make(AREA, "show", a.id))]
            for a in shown
        ]

    head = [_("Open alerts, oldest first:"), ""]
    lines = [list_line(_, study, a, now) for a in alerts]
    return paged(_, head, lines, lambda n: make(PAGE_AREA, "al", n), show)


def alerts_list(_: T, study: Study, alerts: list[Alert], now: datetime) -> tuple[str, Buttons]:
    return alert_pages(_, study, alerts, now)[0]


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


def patient_pages(_: T, study: Study, rows: list[PatientSummary]) -> list[Page]:
    if not rows:
        return [(_("No patients enrolled yet."), [])]
    lines = [summary_line(_, study, s) for s in rows]
    return paged(_, [], lines, lambda n: make(PAGE_AREA, "pt", n))


def patients_list(_: T, study: Study, rows: list[PatientSummary]) -> str:
    return patient_pages(_, study, rows)[0][0]


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


def baseline_line(_: T, study: Study, baseline: Mapping[str, float]) -> str:
    """The patient's baseline (medians), or why there is none (Telegram /patient, console)."""
    if baseline:
        values = " · ".join(f"{code} {number(_, v)}" for code, v in baseline.items())
        return _("Baseline (median): {values}", values=values)
    return _(
        "No baseline (fewer than {n} diaries before Day 0): worsening from baseline "
        "cannot be checked for this patient; the fallback rules apply.",
        n=study.baseline_min_diaries,
    )


def patient_detail(_: T, study: Study, d: PatientDetail, now: datetime) -> str:
    return detail_pages(_, study, d, now)[0][0]


def detail_pages(_: T, study: Study, d: PatientDetail, now: datetime) -> list[Page]:
    """/patient RP-001: one page unless many open alerts (or long answers) make it longer."""
    subject = d.summary.patient.subject
    lines = _detail_lines(_, study, d, now)
    return paged(_, [], lines, lambda n: make(PAGE_AREA, "pd", n, subject))


def _detail_lines(_: T, study: Study, d: PatientDetail, now: datetime) -> list[str]:
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
    lines.append(baseline_line(_, study, d.baseline))
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
    return lines
