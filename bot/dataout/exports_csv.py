"""CSV export: long (one row per answer), wide (one row per diary) and a data dictionary.

Pure: a `Dataset` and the study definition in, file contents out. Files are UTF-8 with a byte
order mark so that Excel, which many study teams open them with, shows Chinese correctly.
Missed, paused and withdrawn diaries appear as rows of their own with that status — never as
blank answers that could be mistaken for "nothing to report".
Every cell goes through `textsafety.csv_cell`: a cell that a spreadsheet would run as a formula
(`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`; plain numbers such as `-3` stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime

from bot.dataout.dataset import Dataset
from bot.dataout.labels import decode, item_forms, number, translators
from bot.domain.study import Condition, Study
from bot.domain.textsafety import csv_cell
from bot.i18n import t

LONG_COLUMNS = (
    "subject",
    "occurrence",
    "phase",
    "form",
    "study_day",
    "local_date",
    "status",
    "item",
    "value_code",
    "value",
    "answered_at",
    "submitted_at",
)
WIDE_FIXED = (
    "subject",
    "occurrence",
    "phase",
    "form",
    "study_day",
    "local_date",
    "status",
    "submitted_at",
)
DICTIONARY_COLUMNS = (
    "item",
    "order",
    "kind",
    "forms",
    "short_en",
    "short_zh",
    "question_en",
    "question_zh",
    "weekly_question_en",
    "weekly_question_zh",
    "min",
    "max",
    "unit",
    "first_day",
    "last_day",
    "show_if_item",
    "show_if_in",
    "show_if_any",
    "show_if_gte",
    "show_if_lt",
    "option_code",
    "option_value",
    "option_exclusive",
    "option_en",
    "option_zh",
)


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8-sig")


def _ts(value: datetime | None) -> str:
    """UTC, to the second, ISO 8601 with Z: what every statistics package reads."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else ""


def long_rows(ds: Dataset, study: Study) -> list[list[object]]:
    en = t("en")
    rows: list[list[object]] = []
    for s in ds.subjects:
        for d in s.diaries:
            head = [s.subject, d.key, d.phase, d.form, d.study_day, d.local_date.isoformat()]
            if not d.answers:
                rows.append([*head, d.status, "", "", "", "", _ts(d.submitted_at)])
                continue
            for a in d.answers:
                item = study.item(a.item)
                rows.append(
                    [
                        *head,
                        d.status,
                        a.item,
                        a.value,
                        decode(item, a.value, en),
                        _ts(a.answered_at),
                        _ts(a.submitted_at),
                    ]
                )
    return rows


def wide_rows(ds: Dataset, study: Study) -> list[list[object]]:
    rows: list[list[object]] = []
    for s in ds.subjects:
        for d in s.diaries:
            values = {a.item: a.value for a in d.answers}
            rows.append(
                [
                    s.subject,
                    d.key,
                    d.phase,
                    d.form,
                    d.study_day,
                    d.local_date.isoformat(),
                    d.status,
                    _ts(d.submitted_at),
                    *[values.get(it.code, "") for it in study.items],
                ]
            )
    return rows


def _show_if(cond: Condition | None) -> list[str]:
    if cond is None:
        return ["", "", "", "", ""]
    return [cond.item, "|".join(cond.in_), "|".join(cond.any_), number(cond.gte), number(cond.lt)]


def dictionary_rows(study: Study) -> list[list[object]]:
    """One row per option (items without options: one row), in the order items are asked."""
    en, zh = translators()
    rows: list[list[object]] = []
    for order, it in enumerate(study.items, 1):
        weekly = it.weekly_text
        head = [
            it.code,
            order,
            it.kind,
            "|".join(item_forms(study, it)),
            en(it.short),
            zh(it.short),
            en(it.text),
            zh(it.text),
            en(weekly) if weekly else "",
            zh(weekly) if weekly else "",
            number(it.min),
            number(it.max),
            it.unit or "",
            it.days[0] if it.days else "",
            it.days[1] if it.days else "",
            *_show_if(it.show_if),
        ]
        if not it.options:
            rows.append([*head, "", "", "", "", ""])
        for o in it.options:
            rows.append([*head, o.code, number(o.value), int(o.exclusive), en(o.text), zh(o.text)])
    return rows


def build(ds: Dataset, study: Study) -> dict[str, bytes]:
    """File name → content of the three CSV files."""
    prefix = study.id
    return {
        f"{prefix}_long.csv": _csv(LONG_COLUMNS, long_rows(ds, study)),
        f"{prefix}_wide.csv": _csv(
            (*WIDE_FIXED, *[it.code for it in study.items]), wide_rows(ds, study)
        ),
        f"{prefix}_dictionary.csv": _csv(DICTIONARY_COLUMNS, dictionary_rows(study)),
    }
