"""Diary compliance: how many of the diaries that were due did the patient complete.

Study teams watch compliance because it falls with burden (Daly: 3.9 to 2.7 entries a week over a
year) and because a coordinator call after 3 missed days keeps it high (PROSPECT: 92%). So the
numbers here feed the patient's own progress view, the coordinator digest and the
"N missed in a row" compliance alert.

Pure: the caller passes every occurrence's (study_day, phase, status) and today's study day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STATUSES = ("scheduled", "prompted", "reminded", "completed", "missed", "paused", "withdrawn")

# Only a closed outcome counts. An open diary (scheduled/prompted/reminded) may still be
# completed, so counting it as due would show a patient as non-compliant at 20:01. Paused and
# withdrawn days were never asked of the patient, so they count neither way.
_DUE = frozenset({"completed", "missed"})


@dataclass(frozen=True)
class Ratio:
    """Completed out of due; `percent` is None when nothing was due (not 0%, not 100%)."""

    completed: int
    due: int

    @property
    def percent(self) -> float | None:
        if self.due == 0:
            return None
        return 100.0 * self.completed / self.due


@dataclass(frozen=True)
class Compliance:
    """A patient's compliance summary.

    `missed_in_a_row` and `streak` count back from the most recent due diary; at most one of them
    is non-zero.
    """

    last_7_days: Ratio
    last_30_days: Ratio
    by_phase: dict[str, Ratio]
    overall: Ratio
    missed_in_a_row: int
    streak: int


def _ratio(statuses: Sequence[str]) -> Ratio:
    return Ratio(completed=sum(s == "completed" for s in statuses), due=len(statuses))


def compliance(rows: Sequence[tuple[int, str, str]], today_day: int) -> Compliance:
    """Summarise a patient's diaries.

    rows: (study_day, phase_code, status) for every occurrence. A diary is due once it is
    completed or missed (its window closed unanswered). The 7- and 30-day windows are the due
    diaries with ``today_day - N < study_day <= today_day``. `by_phase` lists every phase found
    in `rows`, in study-day order, even with nothing due yet (percent None), so a report shows
    the phase exists. An unknown status raises ValueError rather than being silently ignored.
    """
    for day, phase, status in rows:
        if status not in STATUSES:
            raise ValueError(f"day {day} ({phase}): unknown status {status!r}")
    ordered = sorted(rows, key=lambda r: r[0])
    due = [r for r in ordered if r[2] in _DUE]

    def window(days: int) -> Ratio:
        return _ratio([s for d, _, s in due if today_day - days < d <= today_day])

    phases: dict[str, list[str]] = {}
    for _, phase, status in ordered:
        bucket = phases.setdefault(phase, [])
        if status in _DUE:
            bucket.append(status)

    missed = streak = 0
    if due:
        last = due[-1][2]
        run = 0
        for _, _, s in reversed(due):
            if s != last:
                break
            run += 1
        if last == "missed":
            missed = run
        else:
            streak = run

    return Compliance(
        last_7_days=window(7),
        last_30_days=window(30),
        by_phase={code: _ratio(sts) for code, sts in phases.items()},
        overall=_ratio([s for _, _, s in due]),
        missed_in_a_row=missed,
        streak=streak,
    )
