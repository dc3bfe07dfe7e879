"""The questionnaire against the packaged study: what is asked when, and what typed input is.

Table-driven: every boundary of the fever window, the follow-up questions and the temperature
parser (which a web channel reuses, so it is pure domain code).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from bot.domain.questionnaire import (
    InputError,
    applicable_items,
    clean,
    no_longer_applying,
    parse_number,
    parse_typed,
)
from bot.domain.schedule import relabelled_days
from bot.domain.study import load_study

STUDY = load_study()
TEMP = STUDY.item("TEMP")
BM = STUDY.item("BM")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("38.5", "38.5"),
        ("38,5", "38.5"),
        ("38.5℃", "38.5"),
        ("38.5°C", "38.5"),
        ("38.5 °C", "38.5"),
        ("38.5°c", "38.5"),
        ("38.5°", "38.5"),
        ("38.5度", "38.5"),
        ("38.5 摄氏度", "38.5"),
        ("３８．５", "38.5"),  # full-width digits and point
        ("３８，５", "38.5"),
        ("３８．５℃", "38.5"),
        ("38。5", "38.5"),
        ("  39  ", "39.0"),
        ("38", "38.0"),
        ("38.50", "38.5"),  # the same number: nothing is rounded
        ("35.0", "35.0"),
        ("43.0", "43.0"),
        ("37.9", "37.9"),
    ],
)
def test_temperature_accepted_as_typed(typed: str, stored: str) -> None:
    assert parse_typed(TEMP, typed, 100) == stored


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("37.95", "one_decimal"),  # never rounded up to 38.0
        ("38.05", "one_decimal"),
        ("38.123", "one_decimal"),
        ("３７．９５", "one_decimal"),
        ("34.9", "out_of_range"),
        ("43.1", "out_of_range"),
        ("-38", "out_of_range"),
        ("hot", "not_a_number"),
        ("", "not_a_number"),
        (".", "not_a_number"),
        ("1e1", "not_a_number"),
        ("NaN", "not_a_number"),
        ("Infinity", "not_a_number"),
        ("38..5", "not_a_number"),
        ("38.5 F", "not_a_number"),
    ],
)
def test_temperature_refused(typed: str, error: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_typed(TEMP, typed, 100)
    assert exc.value.code == error


@pytest.mark.parametrize(
    ("typed", "unit", "value"),
    [
        ("38,5", None, Decimal("38.5")),
        ("３", None, Decimal("3")),
        ("38.5℃", "°C", Decimal("38.5")),
        ("37.95", "°C", Decimal("37.95")),  # parse_number keeps every digit
    ],
)
def test_parse_number_is_exact(typed: str, unit: str | None, value: Decimal) -> None:
    assert parse_number(typed, unit) == value


def test_units_are_only_stripped_from_temperatures() -> None:
    with pytest.raises(ValueError):
        parse_number("3度", None)
    with pytest.raises(InputError):
        parse_typed(BM, "3度", 100)


@pytest.mark.parametrize(("typed", "stored"), [("3", "3"), ("２０", "20"), ("0", "0")])
def test_counts_accept_full_width_digits(typed: str, stored: str) -> None:
    assert parse_typed(BM, typed, 100) == stored


def _asked(day: int, answers: dict[str, str]) -> list[str]:
    return [it.code for it in applicable_items(STUDY, day, answers)]


@pytest.mark.parametrize(
    ("day", "asked"),
    [
        (-7, False),
        (-1, False),
        (0, True),
        (14, True),
        (15, True),
        (40, True),
        (90, True),
        (91, True),  # the first weekly diary
        (400, True),
        (729, True),
    ],
)
def test_fever_and_complications_are_asked_from_day_0_in_every_phase(day: int, asked: bool) -> None:
    codes = _asked(day, {"FEVER": "Y"})
    assert ("FEVER" in codes) is asked
    assert ("TEMP" in codes) is asked
    assert ("COMPL" in codes) is asked


def test_fever_question_has_a_weekly_wording() -> None:
    assert "7 days" in STUDY.item("FEVER").question("weekly")
    assert "7 days" in STUDY.item("TEMP").question("weekly")
    assert "24 hours" in STUDY.item("FEVER").question("daily")


@pytest.mark.parametrize(("bleed", "dizzy"), [("0", False), ("1", False), ("2", True), ("3", True)])
def test_dizziness_is_asked_after_any_visible_blood(bleed: str, dizzy: bool) -> None:
    assert ("BLEED_FAINT" in _asked(5, {"BLEED": bleed})) is dizzy


@pytest.mark.parametrize(
    ("answers", "dropped"),
    [
        ({"BLEED": "3", "BLEED_FAINT": "Y"}, {}),
        ({"BLEED": "0", "BLEED_FAINT": "Y"}, {"BLEED_FAINT": "Y"}),  # no blood: no dizziness
        ({"FEVER": "N", "TEMP": "38.5"}, {"TEMP": "38.5"}),
        ({"FEVER": "Y", "TEMP": "38.5"}, {}),
        ({"BLEED": "1", "BLEED_FAINT": "N", "FEVER": "N", "TEMP": "39.0"},
         {"BLEED_FAINT": "N", "TEMP": "39.0"}),
    ],
)  # fmt: skip
def test_answers_that_no_longer_apply(answers: dict[str, str], dropped: dict[str, str]) -> None:
    assert no_longer_applying(STUDY, 5, answers) == dropped
    assert set(clean(STUDY, 5, answers)) | set(dropped) == set(answers)


@pytest.mark.parametrize(
    ("day", "bleed", "days_with_blood", "usual"),
    [
        (90, "2", False, False),  # daily diary: the worst-day form is enough
        (91, "0", False, True),
        (91, "1", True, True),
        (300, "3", True, True),
    ],
)
def test_weekly_efficacy_items(day: int, bleed: str, days_with_blood: bool, usual: bool) -> None:
    codes = _asked(day, {"BLEED": bleed})
    assert ("BLEED_DAYS" in codes) is days_with_blood
    assert ("BM_USUAL" in codes) is usual
    assert "MUCUS" in codes


def test_rescue_treatment_options_each_have_a_code() -> None:
    codes = [o.code for o in STUDY.item("EVENTS").options]
    for code in ("EN_SUCR", "EN_STER", "EN_5ASA", "EN_OTH", "IRON", "APC", "FORMALIN", "HBO"):
        assert code in codes
    assert [o.code for o in STUDY.item("COMPL").options] == [
        "CHILLS",
        "BELLY",
        "PUS",
        "MELENA",
        "NONE",
    ]


@pytest.mark.parametrize(
    ("injection", "stored", "expected"),
    [
        # Day 0 moved 5 days later: a diary answered as Day 2 is now Day -3 (baseline).
        (
            date(2027, 1, 15),
            [(1, date(2027, 1, 12), 2), (2, date(2027, 1, 15), 5), (3, date(2027, 1, 9), -1)],
            [(1, -3), (2, 0), (3, -6)],
        ),
        # Day 0 moved 3 days earlier: a baseline diary dated after the real injection is Day 1.
        (
            date(2027, 1, 7),
            [(1, date(2027, 1, 8), -2), (2, date(2027, 1, 6), -4)],
            [(1, 1), (2, -1)],
        ),
        # Unchanged labels are left alone.
        (date(2027, 1, 10), [(1, date(2027, 1, 12), 2)], []),
    ],
)
def test_relabelled_days(
    injection: date, stored: list[tuple[int, date, int]], expected: list[tuple[int, int]]
) -> None:
    assert relabelled_days(stored, injection) == expected
