"""Bulk enrolment from CSV: every row or none, in one transaction."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from bot.domain.study import parse_hhmm
from bot.i18n import N_, parse_lang
from bot.services.enrolment import EnrolError, Enrolment, enroll
from bot.services.runtime import Runtime

COLUMNS = ("subject", "injection_date", "lang", "timezone", "prompt_time")
OPTIONAL = ("channel", "phone", "birth_year")  # web patients: channel "web", phone, birth_year


class BulkError(EnrolError):
    """A bad file or row; the message names its line."""


class _Preview(Exception):
    def __init__(self, results: list[Enrolment]) -> None:
        self.results = results


async def enroll_csv(rt: Runtime, path: str, *, as_json: bool = False) -> int:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # noqa: ASYNC240 - one-shot CLI
    except OSError as exc:
        raise BulkError(
            f"{path}: {exc.strerror}", N_("The file cannot be read: {error}"), error=exc.strerror
        ) from None
    results = await enroll_rows(rt, text)
    if as_json:
        print(json.dumps([r.__dict__ for r in results], ensure_ascii=False))
    else:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["subject", "code", "link"])
        for r in results:
            writer.writerow([r.subject, r.code, r.link or ""])
        print(out.getvalue(), end="")
    return 0


async def enroll_rows(
    rt: Runtime, text: str, *, actor: str = "cli:csv", preview: bool = False
) -> list[Enrolment]:
    """Enrol every row or none. `preview`: run every check and enrolment exactly as for real,
    then roll the transaction back (the codes it shows are never valid)."""
    try:
        return await _enroll_rows(rt, text, actor=actor, preview=preview)
    except _Preview as done:
        return done.results


async def _enroll_rows(rt: Runtime, text: str, *, actor: str, preview: bool) -> list[Enrolment]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        columns = ", ".join(missing)
        raise BulkError(
            f"line 1: missing column(s): {columns}",
            N_("Line 1: missing column(s): {columns}"),
            columns=columns,
        )
    results: list[Enrolment] = []
    seen: set[str] = set()
    async with rt.db.transaction() as conn:
        for row in reader:
            line = reader.line_num
            try:
                subject = (row["subject"] or "").strip()
                if subject in seen:
                    raise EnrolError(
                        f"subject {subject} appears twice",
                        N_("{subject} appears twice."),
                        subject=subject,
                    )
                seen.add(subject)
                try:
                    injection = date.fromisoformat((row["injection_date"] or "").strip())
                except ValueError:
                    raise EnrolError(
                        f"bad date {row['injection_date']!r}",
                        N_("Bad date {value}: use YYYY-MM-DD, like 2026-12-10."),
                        value=row["injection_date"] or "",
                    ) from None
                lang_raw = (row["lang"] or "").strip()
                lang = parse_lang(lang_raw) if lang_raw else None
                if lang_raw and lang is None:
                    raise EnrolError(
                        f"unknown language {lang_raw!r}",
                        N_("Unknown language {value}: zh or en."),
                        value=lang_raw,
                    )
                time_raw = (row["prompt_time"] or "").strip()
                try:
                    at = parse_hhmm(time_raw) if time_raw else rt.study.default_prompt_time
                except ValueError:
                    raise EnrolError(
                        f"bad time {time_raw!r}",
                        N_("Bad reminder time {value}: use HH:MM, like 20:00."),
                        value=time_raw,
                    ) from None
                tz = (row["timezone"] or "").strip() or rt.study.timezone
                channel = (row.get("channel") or "").strip().lower() or "telegram"
                phone = (row.get("phone") or "").strip() or None
                year_raw = (row.get("birth_year") or "").strip()
                if year_raw and not year_raw.isdigit():
                    raise EnrolError(
                        f"bad year of birth {year_raw!r}",
                        N_("Please give an adult's year of birth as four digits, like 1956."),
                    )
                results.append(
                    await enroll(
                        rt,
                        subject,
                        injection,
                        lang,
                        tz,
                        at,
                        actor=actor,
                        conn=conn,
                        channel=channel,
                        phone=phone,
                        birth_year=int(year_raw) if year_raw else None,
                    )
                )
            except EnrolError as exc:
                raise BulkError(
                    f"line {line}: {exc}", N_("Line {line}: {reason}"), line=line, reason=exc
                ) from None
        if preview:
            raise _Preview(results)  # leaves the transaction: everything is rolled back
    return results
