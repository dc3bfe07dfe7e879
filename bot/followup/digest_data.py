"""What the coordinator digest says, as data: made by bot/followup/digest.py (`collect`), put
into words by conversations/digest_view.py (`digest_text`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class VisitSoon:
    subject: str
    visit: str  # msgid of the visit name
    target: date
    start: date
    end: date


@dataclass(frozen=True)
class DigestData:
    local_date: date
    completed: int
    due: int
    not_completed: list[tuple[str, str]]  # (subject, missed | open)
    missed_runs: list[tuple[str, int]]
    visits: list[VisitSoon]
    new_patients: list[str]
    # (subject, reason msgid) of the unacknowledged review alerts; None: no escalation feature
    review_alerts: list[tuple[str, str]] | None = None
    extra: dict[str, object] = field(default_factory=dict)
    missed_threshold: int = 3  # the study's `missed_in_a_row_alert`

    @property
    def open_alerts(self) -> int:
        return len(self.review_alerts or [])

    @property
    def quiet(self) -> bool:
        return (
            not self.not_completed
            and not self.missed_runs
            and not self.visits
            and not self.new_patients
            and not self.open_alerts
        )
