"""Compliance: what counts as due, the 7/30-day windows, per phase, misses in a row, streaks."""

from __future__ import annotations

import pytest

from bot.domain.compliance import Compliance, Ratio, compliance

# One letter per study day, so a case reads like a diary calendar.
LETTERS = {
    "c": "completed",
    "m": "missed",
    "p": "paused",
    "w": "withdrawn",
    "s": "scheduled",
    "o": "prompted",
    "r": "reminded",
}


def _rows(phase: str, first_day: int, pattern: str, step: int = 1) -> list[tuple[int, str, str]]:
    return [(first_day + i * step, phase, LETTERS[ch]) for i, ch in enumerate(pattern)]


def _daily(pattern: str) -> list[tuple[int, str, str]]:
    return _rows("daily", 0, pattern)


CASES = [
    # id, rows, today_day, last 7 days, last 30 days, overall, missed in a row, streak
    ("all-done", _daily("cccccccccc"), 9, "7/7", "10/10", "10/10", 0, 10),
    ("gaps", _daily("cccmcmcccc"), 9, "5/7", "8/10", "8/10", 0, 4),
    ("paused-not-counted", _daily("ccccpppccc"), 9, "4/4", "7/7", "7/7", 0, 7),
    ("3-missed-in-a-row", _daily("cccccccmmm"), 9, "4/7", "7/10", "7/10", 3, 0),
    ("misses-broken-by-an-entry", _daily("ccmmcmmm"), 7, "2/7", "3/8", "3/8", 3, 0),
    ("pause-does-not-break-a-run", _daily("cmmpm"), 4, "1/4", "1/4", "1/4", 3, 0),
    ("open-today-not-due", _daily("ccccmmo"), 6, "4/6", "4/6", "4/6", 2, 0),
    ("reminded-not-due", _daily("ccccr"), 4, "4/4", "4/4", "4/4", 0, 4),
    ("withdrawn", _daily("cccwwwssss"), 5, "3/3", "3/3", "3/3", 0, 3),
    ("nothing-yet", [], 0, "0/0", "0/0", "0/0", 0, 0),
    ("only-scheduled", _daily("ssss"), 0, "0/0", "0/0", "0/0", 0, 0),
    # Day 2 (= today - 7) is outside the 7-day window, Day 9 (today) inside; Day 10 not due
    ("window-edges", _daily("mmmcccccccs"), 9, "7/7", "7/10", "7/10", 0, 7),
    # weekly Days 91, 98, 105, 112, 119: on Day 121 the 30-day window is Days 92..121
    ("weekly-window", _rows("weekly", 91, "mcmcc", 7), 121, "1/1", "3/4", "3/5", 0, 2),
    # rows in any order: runs are counted by study day
    ("unsorted", list(reversed(_daily("cmmm"))), 3, "1/4", "1/4", "1/4", 3, 0),
]


def _ratio(text: str) -> Ratio:
    completed, due = text.split("/")
    return Ratio(int(completed), int(due))


@pytest.mark.parametrize(
    ("rows", "today", "last7", "last30", "overall", "missed", "streak"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_compliance_table(
    rows: list[tuple[int, str, str]],
    today: int,
    last7: str,
    last30: str,
    overall: str,
    missed: int,
    streak: int,
) -> None:
    c = compliance(rows, today)
    assert c.last_7_days == _ratio(last7)
    assert c.last_30_days == _ratio(last30)
    assert c.overall == _ratio(overall)
    assert (c.missed_in_a_row, c.streak) == (missed, streak)


def test_by_phase_over_the_whole_study() -> None:
    rows = (
        _rows("baseline", -3, "ccm")
        + _rows("daily", 0, "c" * 85 + "mm" + "ccc" + "c")
        + _rows("weekly", 91, "ss", 7)
    )
    c = compliance(rows, 90)
    assert list(c.by_phase) == ["baseline", "daily", "weekly"]
    assert c.by_phase["baseline"] == Ratio(2, 3)
    assert c.by_phase["daily"] == Ratio(89, 91)
    assert c.by_phase["weekly"] == Ratio(0, 0)
    assert c.by_phase["weekly"].percent is None
    assert c.overall == Ratio(91, 94)
    assert c.last_7_days == Ratio(5, 7)  # Days 84..90
    assert c.streak == 4


@pytest.mark.parametrize(
    ("ratio", "percent"),
    [(Ratio(0, 0), None), (Ratio(0, 4), 0.0), (Ratio(3, 4), 75.0), (Ratio(7, 7), 100.0)],
)
def test_percent(ratio: Ratio, percent: float | None) -> None:
    assert ratio.percent == percent


def test_unknown_status_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown status"):
        compliance([(0, "daily", "done")], 0)


def test_result_is_a_compliance() -> None:
    assert isinstance(compliance(_rows("daily", 0, "c"), 0), Compliance)
