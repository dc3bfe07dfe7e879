"""The dated one-off events of a patient's follow-up besides diaries: visit reminders, closing.

Pure: computed from the study definition and the patient's anchor (injection date, time zone,
prompt time), so the same inputs always give the same keys. Storage keeps one row per key and
marks it when done; that is what makes each reminder go out exactly once, even across restarts.

A visit reminder's key carries the visit's target date: after a re-anchor the visit is on
another day, which is news to the patient, so it gets reminders of its own. The closing message
has one key per patient: it ends the follow-up once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from bot.domain.schedule import closing_at, local_to_utc, visit_reminders
from bot.domain.study import Study

CLOSING_KEY = "closing"


@dataclass(frozen=True)
class PlannedEvent:
    key: str
    kind: str  # visit_reminder | closing
    due_at: datetime
    expires_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


def signature(injection_date: date, timezone: str, prompt_time: time) -> str:
    """What the events depend on; stored so a change (re-anchor, new zone) triggers a recompute.

    Must equal the SQL expression `injection_date || '|' || timezone || '|' || prompt_time` over
    the stored patient row (ISO date, IANA name, HH:MM).
    """
    return f"{injection_date.isoformat()}|{timezone}|{prompt_time.strftime('%H:%M')}"


def planned_events(
    study: Study, injection_date: date, timezone: str, prompt_time: time
) -> list[PlannedEvent]:
    """Every visit reminder and the closing message, ordered by due time.

    A visit reminder expires at the start of the visit's target day (patient's local time): if
    the bot was down when it was due, it is still worth sending late, but not once the day of
    the visit has come.
    """
    out: list[PlannedEvent] = []
    for r in visit_reminders(study, injection_date, timezone):
        v = r.visit
        out.append(
            PlannedEvent(
                key=f"visit:{v.code}:{r.days_before}:{v.target_date.isoformat()}",
                kind="visit_reminder",
                due_at=r.send_at,
                expires_at=local_to_utc(v.target_date, time(0, 0), timezone),
                data={
                    "visit": v.code,
                    "name": v.name,
                    "days_before": r.days_before,
                    "target": v.target_date.isoformat(),
                    "start": v.window_start.isoformat(),
                    "end": v.window_end.isoformat(),
                },
            )
        )
    out.append(
        PlannedEvent(
            key=CLOSING_KEY,
            kind="closing",
            due_at=closing_at(study, injection_date, timezone, prompt_time),
            data={"day": study.closing_day},
        )
    )
    out.sort(key=lambda e: (e.due_at, e.key))
    return out
