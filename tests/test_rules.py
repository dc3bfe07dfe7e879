"""Escalation rules against the packaged NCT06438809 study: every clinical boundary.

The thresholds come from the study file (and shared/docs/clinical.md); these tests pin them so a
change in either the engine or the study file that moves a boundary fails loudly.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.domain.rules import (
    Diary,
    Finding,
    baseline_means,
    baseline_values,
    codes,
    evaluate,
    matches,
    missing_baseline_rules,
    numeric,
)
from bot.domain.study import Condition, Study, load_study

STUDY = load_study()

# A diary with nothing to report: no bleeding, no urgency, no leakage, no pain, one stool.
QUIET = {
    "BLEED": "0",
    "URGENCY": "0",
    "LEAK": "0",
    "PAIN": "0",
    "BM": "1",
    "TENESMUS": "0",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}

# Baseline medians used by most tests: BLEED 0, URGENCY 1, PAIN 2, BM 2.
BASE = {"BLEED": 0.0, "URGENCY": 1.0, "LEAK": 0.0, "PAIN": 2.0, "BM": 2.0, "TENESMUS": 0.0}

BASELINE_RULES = ["BM_URGENT", "WORSE_BLEED", "WORSE_URGENCY", "WORSE_PAIN", "BM_REVIEW"]


def diary(day: int = 20, phase: str | None = None, **answers: str) -> Diary:
    """A completed diary: the quiet answers with `answers` overriding; "" leaves an item unasked."""
    if phase is None:
        phase = "baseline" if day < 0 else "daily" if day <= 90 else "weekly"
    merged = {**QUIET, **answers}
    return Diary(
        key=f"{phase}:{day}",
        study_day=day,
        phase=phase,
        answers={k: v for k, v in merged.items() if v != ""},
    )


def fired(d: Diary, history: list[Diary] | None = None, baseline: dict | None = None) -> list[str]:
    return [
        f.rule for f in evaluate(STUDY, d, history or [], BASE if baseline is None else baseline)
    ]


def test_packaged_study_has_the_rules_these_tests_expect() -> None:
    assert [r.code for r in STUDY.rules] == [
        "BLEED_HEAVY",
        "BLEED_FAINT",
        "PAIN_SEVERE",
        "FEVER_EARLY",
        "FEVER_HIGH",
        "HOSPITAL",
        "INCONTINENCE_URGENCY",
        "COMPL_CHILLS",
        "COMPL_CHILLS_LATE",
        "COMPL_BELLY",
        "COMPL_PUS",
        "COMPL_MELENA",
        "BM_URGENT",
        "BM_NOBASE_URGENT",
        "BM_NOBASE_REVIEW",
        "WORSE_BLEED",
        "BLEED_NOBASE",
        "WORSE_URGENCY",
        "WORSE_PAIN",
        "BM_REVIEW",
        "NEW_MEDICINE",
        "OTHER_PROBLEM",
    ]


# --------------------------------------------------------------------------- answer values


@pytest.mark.parametrize(
    ("item", "raw", "expected"),
    [
        ("BLEED", "0", 0.0),
        ("BLEED", "3", 3.0),
        ("BLEED", " 2 ", 2.0),
        ("BLEED", "9", None),  # not an option
        ("BLEED_FAINT", "Y", 1.0),
        ("BLEED_FAINT", "N", 0.0),
        ("URGENCY", "4", 4.0),
        ("PAIN", "7", 7.0),
        ("BM", "15", 15.0),
        ("TEMP", "38.5", 38.5),
        ("TEMP", "abc", None),
        ("TEMP", "", None),
        ("TEMP", "nan", None),
        ("TEMP", "inf", None),
        ("EVENTS", "ER", None),  # multi: no single number
        ("OTHER_TEXT", "3", None),  # text is never a number
    ],
)
def test_numeric(item: str, raw: str, expected: float | None) -> None:
    assert numeric(STUDY.item(item), raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ER,HOSP", {"ER", "HOSP"}),
        ("NONE", {"NONE"}),
        ("3", {"3"}),
        (" ER , MED ,", {"ER", "MED"}),
        ("", set()),
    ],
)
def test_codes(raw: str, expected: set[str]) -> None:
    assert codes(raw) == frozenset(expected)


def test_baseline_is_the_median_of_baseline_diaries_that_answered() -> None:
    diaries = [
        diary(-4, BM="2", PAIN="1", BLEED="1", URGENCY="0"),
        diary(-3, BM="9", PAIN="2", BLEED="0", URGENCY="1", FEVER="N"),
        diary(-2, BM="3", PAIN="", BLEED="0", URGENCY="3"),  # PAIN skipped: does not count as 0
        diary(-1, BM="3", PAIN="4", BLEED="1", URGENCY="1"),
        diary(5, BM="15", PAIN="10", BLEED="3"),  # not baseline
    ]
    base = baseline_values(STUDY, diaries)
    assert base["BM"] == 3.0  # median of 2, 3, 3, 9 (a mean would say 4.25)
    assert base["PAIN"] == 2.0  # median of 1, 2, 4
    assert base["BLEED"] == 0.0  # ordinal: the lower median of 0, 0, 1, 1, a reported level
    assert base["URGENCY"] == 1.0  # lower median of 0, 1, 1, 3 (a mean would say 1.25)
    assert "FEVER" not in base  # asked on one baseline diary only: fewer than 3
    assert "TEMP" not in base  # never answered
    assert "EVENTS" not in base and "OTHER_TEXT" not in base  # no numeric value
    assert list(base) == [i.code for i in STUDY.items if i.code in base]  # questionnaire order
    assert baseline_means(STUDY, diaries) == base  # the former name


@pytest.mark.parametrize(
    ("bleeds", "expected"),
    [
        ([], None),
        (["2"], None),
        (["2", "0"], None),  # 2 baseline diaries: no baseline
        (["0", "0", "1"], 0.0),  # 3: a baseline
        (["0", "1", "1"], 1.0),
        (["0", "0", "1", "1"], 0.0),  # even count: the lower middle level
        (["1", "1", "2", "2"], 1.0),
        (["0", "0", "0", "0", "0", "3", "3"], 0.0),  # a mean (0.86) would hide +2 worse
        (["3", "3", "3"], 3.0),
    ],
)
def test_baseline_needs_three_diaries_and_takes_the_median(
    bleeds: list[str], expected: float | None
) -> None:
    diaries = [diary(-7 + i, BLEED=b) for i, b in enumerate(bleeds)]
    assert baseline_values(STUDY, diaries).get("BLEED") == expected


@pytest.mark.parametrize(
    ("bms", "expected"), [(["2", "3"], None), (["2", "3", "4"], 3.0), (["2", "3", "4", "8"], 3.5)]
)
def test_bowel_movement_baseline_is_the_ordinary_median(
    bms: list[str], expected: float | None
) -> None:
    diaries = [diary(-7 + i, BM=b) for i, b in enumerate(bms)]
    assert baseline_values(STUDY, diaries).get("BM") == expected


def test_baseline_is_the_diaries_before_day_0_whatever_their_phase() -> None:
    # After a re-anchor the stored study days are relabelled: a "daily" diary now dated before
    # the new Day 0 is baseline, and a "baseline" diary dated after it never is.
    relabelled = [
        diary(-3, phase="daily", BM="5"),
        diary(-2, phase="daily", BM="5"),
        diary(-1, phase="daily", BM="5"),
        diary(0, phase="baseline", BM="1"),
        diary(1, phase="baseline", BM="1"),
    ]
    assert baseline_values(STUDY, relabelled)["BM"] == 5.0
    assert baseline_values(STUDY, relabelled[3:]) == {}
    assert baseline_values(STUDY, [diary(3, BM="4"), diary(4, BM="5")], min_diaries=1) == {}
    assert baseline_values(STUDY, relabelled[:2], min_diaries=2)["BM"] == 5.0


# --------------------------------------------------------------------------- matches


@pytest.mark.parametrize(
    ("cond", "d", "baseline", "expected"),
    [
        (Condition(item="PAIN", gte=8), diary(PAIN="8"), BASE, True),
        (Condition(item="PAIN", gte=8), diary(PAIN=""), BASE, False),  # not answered
        (Condition(item="TEMP", gte=38.0, days=(0, 14)), diary(14, TEMP="38.0"), {}, True),
        (Condition(item="TEMP", gte=38.0, days=(0, 14)), diary(15, TEMP="38.0"), {}, False),
        (Condition(item="TEMP", gte=38.0, days=(0, 14)), diary(-1, TEMP="38.0"), {}, False),
        (Condition(item="TEMP", lt=38.0), diary(TEMP="37.9"), {}, True),
        (Condition(item="TEMP", lt=38.0), diary(TEMP="38.0"), {}, False),
        (Condition(item="TEMP", gte=38.0), diary(TEMP="hot"), {}, False),
        (Condition(item="BM", above_baseline_gte=4), diary(BM="6"), BASE, True),
        (Condition(item="BM", above_baseline_gte=4), diary(BM="6"), {}, False),  # no baseline
        (Condition(item="BM", above_baseline_gte=4), diary(BM="6"), {"PAIN": 1.0}, False),
        (Condition(item="BM", above_baseline_gte=4), diary(-2, BM="9"), BASE, False),  # baseline
        (Condition(item="BM", above_baseline_lt=7), diary(BM="8"), BASE, True),
        (Condition(item="BM", above_baseline_lt=7), diary(BM="9"), BASE, False),
        (Condition(item="BLEED", in_=("3",)), diary(BLEED="3"), {}, True),
        (Condition(item="BLEED", in_=("3",)), diary(BLEED="2"), {}, False),
        (Condition(item="EVENTS", any_=("ER", "HOSP")), diary(EVENTS="MED,HOSP"), {}, True),
        (Condition(item="EVENTS", any_=("ER", "HOSP")), diary(EVENTS="MED"), {}, False),
        # `in` on a multi item: nothing outside the list was chosen.
        (Condition(item="EVENTS", in_=("NONE",)), diary(EVENTS="NONE"), {}, True),
        (Condition(item="EVENTS", in_=("MED", "ER")), diary(EVENTS="MED"), {}, True),
        (Condition(item="EVENTS", in_=("MED",)), diary(EVENTS="MED,ER"), {}, False),
        (Condition(item="EVENTS", in_=("MED",)), diary(EVENTS=""), {}, False),
        (Condition(item="OTHER_TEXT"), diary(OTHER_TEXT="rash"), {}, True),  # answered at all
    ],
)
def test_matches(cond: Condition, d: Diary, baseline: dict[str, float], expected: bool) -> None:
    assert matches(STUDY, cond, d, baseline) is expected


# --------------------------------------------------------------------------- single-diary rules


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        pytest.param(diary(), [], id="quiet"),
        pytest.param(diary(200), [], id="quiet-weekly"),
        # Pain ≥ 8.
        pytest.param(diary(PAIN="7"), [], id="pain-7"),
        pytest.param(diary(PAIN="8"), ["PAIN_SEVERE"], id="pain-8"),
        pytest.param(diary(PAIN="10"), ["PAIN_SEVERE"], id="pain-10"),
        # Fever ≥ 38.0 on Days 0-14.
        pytest.param(diary(0, FEVER="Y", TEMP="38.0"), ["FEVER_EARLY"], id="temp-38.0-day0"),
        pytest.param(diary(14, FEVER="Y", TEMP="37.9"), [], id="temp-37.9-day14"),
        pytest.param(diary(14, FEVER="Y", TEMP="38.0"), ["FEVER_EARLY"], id="temp-38.0-day14"),
        pytest.param(diary(15, TEMP="38.0"), [], id="temp-38.0-day15"),
        pytest.param(diary(15, TEMP="37.9"), [], id="temp-37.9-day15"),
        pytest.param(diary(-1, TEMP="38.5"), [], id="temp-38.5-baseline-day"),
        # Fever ≥ 39.0 on any day (the engine ignores that TEMP is only asked Days 0-14).
        pytest.param(diary(15, TEMP="38.9"), [], id="temp-38.9-day15"),
        pytest.param(diary(15, TEMP="39.0"), ["FEVER_HIGH"], id="temp-39.0-day15"),
        pytest.param(diary(400, TEMP="39.0"), ["FEVER_HIGH"], id="temp-39.0-weekly"),
        pytest.param(diary(-3, TEMP="39.0"), ["FEVER_HIGH"], id="temp-39.0-baseline"),
        pytest.param(
            diary(14, FEVER="Y", TEMP="39.0"), ["FEVER_EARLY", "FEVER_HIGH"], id="temp-39.0-day14"
        ),
        pytest.param(diary(10, FEVER="Y"), [], id="fever-yes-without-temperature"),
        # Health events since the last diary.
        pytest.param(diary(EVENTS="ER"), ["HOSPITAL"], id="events-ER"),
        pytest.param(diary(EVENTS="HOSP"), ["HOSPITAL"], id="events-HOSP"),
        pytest.param(diary(EVENTS="TRANSF"), ["HOSPITAL"], id="events-TRANSF"),
        pytest.param(diary(EVENTS="ER,HOSP,TRANSF"), ["HOSPITAL"], id="events-all-one-finding"),
        pytest.param(diary(EVENTS="MED"), ["NEW_MEDICINE"], id="events-MED"),
        pytest.param(diary(EVENTS="HOSP,MED"), ["HOSPITAL", "NEW_MEDICINE"], id="events-HOSP-MED"),
        pytest.param(diary(EVENTS="NONE"), [], id="events-NONE"),
        # Rescue treatment, each an option of its own: review.
        *[
            pytest.param(diary(EVENTS=code), ["NEW_MEDICINE"], id=f"rescue-{code}")
            for code in (
                "EN_SUCR",
                "EN_STER",
                "EN_5ASA",
                "EN_OTH",
                "IRON",
                "APC",
                "FORMALIN",
                "HBO",
            )
        ],
        pytest.param(diary(EVENTS="TRANSF,IRON"), ["HOSPITAL", "NEW_MEDICINE"], id="transf-iron"),
        # Complications of the injection.
        pytest.param(diary(0, COMPL="CHILLS"), ["COMPL_CHILLS"], id="chills-day0"),
        pytest.param(diary(90, COMPL="CHILLS"), ["COMPL_CHILLS"], id="chills-day90"),
        pytest.param(diary(91, COMPL="CHILLS"), ["COMPL_CHILLS_LATE"], id="chills-day91"),
        pytest.param(diary(400, COMPL="BELLY"), ["COMPL_BELLY"], id="belly-weekly"),
        pytest.param(diary(1, COMPL="BELLY"), ["COMPL_BELLY"], id="belly"),
        pytest.param(diary(1, COMPL="PUS"), ["COMPL_PUS"], id="pus"),
        pytest.param(diary(1, COMPL="MELENA"), ["COMPL_MELENA"], id="melena"),
        pytest.param(
            diary(2, COMPL="CHILLS,BELLY,PUS,MELENA"),
            ["COMPL_CHILLS", "COMPL_BELLY", "COMPL_PUS", "COMPL_MELENA"],
            id="all-complications",
        ),
        pytest.param(diary(2, COMPL="NONE"), [], id="complications-none"),
        # Fever in the weekly phase: asked now, and 39.0 is urgent there too.
        pytest.param(diary(200, FEVER="Y", TEMP="38.9"), [], id="temp-38.9-weekly"),
        pytest.param(diary(200, FEVER="Y", TEMP="39.0"), ["FEVER_HIGH"], id="temp-39.0-wk"),
        # Bleeding.
        pytest.param(diary(BLEED="2"), [], id="bleed-2"),
        pytest.param(diary(BLEED="2", BLEED_FAINT="Y"), ["BLEED_FAINT"], id="bleed-2-faint"),
        pytest.param(diary(BLEED="3", BLEED_FAINT="N"), ["BLEED_HEAVY"], id="bleed-3"),
        pytest.param(
            diary(BLEED="3", BLEED_FAINT="Y"), ["BLEED_HEAVY", "BLEED_FAINT"], id="bleed-3-faint"
        ),
        pytest.param(diary(BLEED_FAINT="Y"), ["BLEED_FAINT"], id="faint-alone"),
        # Loss of bowel control more than once with severe urgency.
        pytest.param(diary(LEAK="2", URGENCY="3"), ["INCONTINENCE_URGENCY"], id="leak2-urg3"),
        pytest.param(diary(LEAK="2", URGENCY="4"), ["INCONTINENCE_URGENCY"], id="leak2-urg4"),
        pytest.param(diary(LEAK="2", URGENCY="2"), [], id="leak2-urg2-moderate"),
        pytest.param(diary(LEAK="1", URGENCY="4"), [], id="leak1-urg4"),
        pytest.param(diary(LEAK="2", URGENCY=""), [], id="leak2-urgency-unanswered"),
        # Other new health problem.
        pytest.param(diary(OTHER="Y", OTHER_TEXT="rash"), ["OTHER_PROBLEM"], id="other-Y"),
        pytest.param(diary(OTHER="N"), [], id="other-N"),
        # Several at once, in study order.
        pytest.param(
            diary(3, BLEED="3", PAIN="9", FEVER="Y", TEMP="38.2", EVENTS="ER,MED", OTHER="Y"),
            [
                "BLEED_HEAVY",
                "PAIN_SEVERE",
                "FEVER_EARLY",
                "HOSPITAL",
                "NEW_MEDICINE",
                "OTHER_PROBLEM",
            ],
            id="many",
        ),
    ],
)
def test_single_diary_rules(d: Diary, expected: list[str]) -> None:
    assert fired(d) == expected


# --------------------------------------------------------------------------- bowel movements


@pytest.mark.parametrize(
    ("baseline_bm", "bm", "expected"),
    [
        (2.0, "1", []),
        (2.0, "5", []),  # +3
        (2.0, "6", ["BM_REVIEW"]),  # +4
        (2.0, "8", ["BM_REVIEW"]),  # +6
        (2.0, "9", ["BM_URGENT"]),  # +7: urgent, not also review
        (2.0, "15", ["BM_URGENT"]),  # 15 or more
        (0.0, "7", ["BM_URGENT"]),
        (0.0, "6", ["BM_REVIEW"]),
        # Fractional mean, 8/3 ≈ 2.67 (baseline diaries with 2, 3, 3 stools).
        (8 / 3, "6", []),  # +3.33
        (8 / 3, "7", ["BM_REVIEW"]),  # +4.33
        (8 / 3, "9", ["BM_REVIEW"]),  # +6.33
        (8 / 3, "10", ["BM_URGENT"]),  # +7.33
        # Means that are not exact in binary floating point still hit the boundary exactly.
        (1.1, "5.1", ["BM_REVIEW"]),  # +4.0
        (1.1, "8.1", ["BM_URGENT"]),  # +7.0
        (0.7, "7.7", ["BM_URGENT"]),  # +7.0
        (0.3, "4.3", ["BM_REVIEW"]),  # +4.0
    ],
)
def test_bowel_movements_above_baseline(baseline_bm: float, bm: str, expected: list[str]) -> None:
    assert fired(diary(BM=bm), baseline={**BASE, "BM": baseline_bm}) == expected


def test_bowel_movement_baseline_from_real_baseline_diaries() -> None:
    base_diaries = [diary(-3, BM="2"), diary(-2, BM="3"), diary(-1, BM="3")]
    baseline = baseline_means(STUDY, base_diaries)
    assert fired(diary(1, BM="6"), base_diaries, baseline) == []
    assert fired(diary(1, BM="7"), base_diaries, baseline) == ["BM_REVIEW"]
    assert fired(diary(1, BM="10"), base_diaries, baseline) == ["BM_URGENT"]


def test_baseline_diary_never_triggers_baseline_rules() -> None:
    d = diary(-1, BM="15", BLEED="2", PAIN="9")
    prev = diary(-2, BM="15", BLEED="2", PAIN="9")
    # Absolute rules still apply before the injection; worsening and BM rules do not.
    assert fired(d, [prev]) == ["PAIN_SEVERE"]


# --------------------------------------------------------------------------- worsening, 2 in a row

# BASE: BLEED 0, URGENCY 1, PAIN 2.
WORSE = {"BLEED": "2", "URGENCY": "3", "PAIN": "5"}  # +2, +2, +3
NEAR = {"BLEED": "1", "URGENCY": "2", "PAIN": "4"}  # +1, +1, +2


@pytest.mark.parametrize(
    ("item", "rule"),
    [("BLEED", "WORSE_BLEED"), ("URGENCY", "WORSE_URGENCY"), ("PAIN", "WORSE_PAIN")],
)
@pytest.mark.parametrize(
    ("history", "current", "fires"),
    [
        pytest.param([], WORSE, False, id="one-diary"),
        pytest.param([WORSE], WORSE, True, id="two-in-a-row"),
        pytest.param([WORSE, WORSE], WORSE, True, id="three-in-a-row"),
        pytest.param([WORSE, NEAR], WORSE, False, id="better-diary-between"),
        pytest.param([WORSE, NEAR, WORSE], WORSE, True, id="run-restarts"),
        pytest.param([WORSE], NEAR, False, id="today-better"),
        pytest.param([NEAR], WORSE, False, id="yesterday-just-below"),
        pytest.param([WORSE, WORSE], NEAR, False, id="run-ends"),
    ],
)
def test_worsening_needs_two_consecutive_diaries(
    item: str, rule: str, history: list[dict[str, str]], current: dict[str, str], fires: bool
) -> None:
    days = range(30, 30 + len(history))
    hist = [diary(day, **{item: h[item]}) for day, h in zip(days, history, strict=True)]
    got = fired(diary(30 + len(history), **{item: current[item]}), hist)
    assert got == ([rule] if fires else [])


def test_all_three_worse_twice_gives_three_reviews_in_study_order() -> None:
    # URGENCY 3 is also "severe": no leakage here, so INCONTINENCE_URGENCY stays quiet.
    got = fired(diary(21, **WORSE), [diary(20, **WORSE)])
    assert got == ["WORSE_BLEED", "WORSE_URGENCY", "WORSE_PAIN"]


def test_worsening_in_different_items_does_not_make_a_run() -> None:
    assert fired(diary(21, PAIN="5"), [diary(20, BLEED="2")]) == []


def test_worsening_with_fractional_baseline() -> None:
    baseline = {**BASE, "PAIN": 2.5}
    assert fired(diary(21, PAIN="5"), [diary(20, PAIN="5")], baseline) == []  # +2.5
    assert fired(diary(21, PAIN="6"), [diary(20, PAIN="6")], baseline) == ["WORSE_PAIN"]


def test_baseline_diaries_in_history_are_skipped_not_counted() -> None:
    base = [diary(d, BLEED="2") for d in range(-7, 0)]
    # Baseline diaries never count towards the run, even if their answers look "worse".
    assert fired(diary(0, BLEED="2"), base) == []
    assert fired(diary(1, BLEED="2"), [*base, diary(0, BLEED="2")]) == ["WORSE_BLEED"]


def test_run_spans_daily_to_weekly_and_missed_diaries() -> None:
    # Missed diaries are not in the history: the preceding *completed* diary is what counts.
    assert fired(diary(91, PAIN="6"), [diary(85, PAIN="6")]) == ["WORSE_PAIN"]


def test_current_diary_in_history_is_not_its_own_predecessor() -> None:
    d = diary(21, BLEED="2")
    assert fired(d, [d]) == []
    assert fired(d, [diary(20, BLEED="2"), d]) == ["WORSE_BLEED"]


def test_history_order_does_not_matter() -> None:
    hist = [diary(20, BLEED="2"), diary(19, BLEED="0")]  # newest first by mistake
    assert fired(diary(21, BLEED="2"), hist) == ["WORSE_BLEED"]


def test_later_diaries_in_history_are_ignored() -> None:
    # Re-evaluating an old diary: only diaries before it form the run.
    hist = [diary(19, BLEED="0"), diary(22, BLEED="2")]
    assert fired(diary(20, BLEED="2"), hist) == []


# --------------------------------------------------------------------------- no baseline


def test_no_baseline_skips_baseline_rules_and_lists_them() -> None:
    assert missing_baseline_rules(STUDY, {}) == BASELINE_RULES
    # The worsening rules stand down; the fallbacks take their place.
    got = fired(diary(21, BM="15", **WORSE), [diary(20, BM="15", **WORSE)], baseline={})
    assert got == ["BM_NOBASE_URGENT", "BLEED_NOBASE"]
    # Absolute rules still protect the patient.
    assert fired(diary(21, BM="15", PAIN="8"), baseline={}) == ["PAIN_SEVERE", "BM_NOBASE_URGENT"]


@pytest.mark.parametrize(
    ("bm", "without", "with_baseline"),
    [
        ("0", [], []),
        ("6", [], ["BM_REVIEW"]),  # BASE BM 2: +4
        ("7", ["BM_NOBASE_REVIEW"], ["BM_REVIEW"]),
        ("9", ["BM_NOBASE_REVIEW"], ["BM_URGENT"]),  # +7
        ("10", ["BM_NOBASE_URGENT"], ["BM_URGENT"]),
        ("20", ["BM_NOBASE_URGENT"], ["BM_URGENT"]),
    ],
)
def test_bowel_movement_fallbacks_apply_only_without_baseline(
    bm: str, without: list[str], with_baseline: list[str]
) -> None:
    assert fired(diary(BM=bm), baseline={}) == without
    assert fired(diary(BM=bm), baseline=BASE) == with_baseline


def test_a_high_baseline_can_still_report_seven_above() -> None:
    # Baseline 13 a day: the buttons go to 20 ("20+"), so +7 is reportable.
    assert STUDY.item("BM").max == 20
    assert fired(diary(BM="19"), baseline={**BASE, "BM": 13.0}) == ["BM_REVIEW"]
    assert fired(diary(BM="20"), baseline={**BASE, "BM": 13.0}) == ["BM_URGENT"]


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ("2", "2", ["BLEED_NOBASE"]),
        ("3", "2", ["BLEED_NOBASE"]),
        ("2", "3", ["BLEED_HEAVY", "BLEED_NOBASE"]),
        ("1", "2", []),  # streaks on the paper are below the fallback
        ("2", "1", []),
        (None, "2", []),  # one diary is not "2 in a row"
    ],
)
def test_bleeding_fallback_needs_two_diaries_in_a_row(
    previous: str | None, current: str, expected: list[str]
) -> None:
    history = [] if previous is None else [diary(20, BLEED=previous)]
    assert fired(diary(21, BLEED=current), history, baseline={}) == expected
    # With a baseline the worsening rule judges instead (BASE BLEED 0: +2 also fires there).
    with_base = fired(diary(21, BLEED=current), history, baseline=BASE)
    assert "BLEED_NOBASE" not in with_base


def test_fallbacks_never_judge_baseline_diaries() -> None:
    prev = diary(-2, BM="12", BLEED="2")
    assert fired(diary(-1, BM="12", BLEED="2"), [prev], baseline={}) == []


def test_fallback_rule_cannot_compare_with_baseline(tmp_path: Path) -> None:
    from bot.domain.study import StudyError, load_study

    text = (
        Path(STUDY.source)
        .read_text(encoding="utf-8")
        .replace(
            'when = { item = "BM", gte = 10 }', 'when = { item = "BM", above_baseline_gte = 10 }'
        )
    )
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StudyError, match="without_baseline"):
        load_study(path)


def test_full_baseline_skips_nothing() -> None:
    assert missing_baseline_rules(STUDY, BASE) == []


def test_partial_baseline_lists_only_the_rules_it_cannot_judge() -> None:
    baseline = {"BLEED": 0.0, "PAIN": 2.0}
    assert missing_baseline_rules(STUDY, baseline) == ["BM_URGENT", "WORSE_URGENCY", "BM_REVIEW"]
    assert fired(diary(21, PAIN="5"), [diary(20, PAIN="5")], baseline) == ["WORSE_PAIN"]


def test_compliance_rules_are_not_raised_here() -> None:
    study = replace(STUDY, rules=tuple(replace(r, level="compliance") for r in STUDY.rules))
    assert evaluate(study, diary(PAIN="10", BLEED="3", BM="15"), [], BASE) == []
    assert missing_baseline_rules(study, {}) == []


# --------------------------------------------------------------------------- finding content


def _one(study: Study, d: Diary, rule: str, history: list[Diary] | None = None) -> Finding:
    found = [f for f in evaluate(study, d, history or [], BASE) if f.rule == rule]
    assert len(found) == 1
    return found[0]


def test_finding_for_absolute_rule() -> None:
    f = _one(STUDY, diary(PAIN="8"), "PAIN_SEVERE")
    assert f == Finding(
        rule="PAIN_SEVERE",
        level="urgent",
        reason="Pain 8 or more",
        items=("PAIN",),
        answers={"PAIN": "8"},
        baseline={},
    )


def test_finding_items_follow_questionnaire_order_not_rule_order() -> None:
    # The rule lists LEAK before URGENCY; the patient was asked URGENCY first.
    f = _one(STUDY, diary(LEAK="2", URGENCY="3"), "INCONTINENCE_URGENCY")
    assert f.items == ("URGENCY", "LEAK")
    assert dict(f.answers) == {"URGENCY": "3", "LEAK": "2"}
    assert list(f.answers) == ["URGENCY", "LEAK"]
    assert f.baseline == {}
    assert f.level == "urgent"
    rule = STUDY.rule("INCONTINENCE_URGENCY")
    assert rule is not None and f.reason == rule.reason


BM_BASE = {"BM": 2.0}


def test_finding_for_baseline_rule_carries_the_baseline() -> None:
    f = _one(STUDY, diary(BM="9"), "BM_URGENT")
    assert (f.level, f.items, f.answers, f.baseline) == ("urgent", ("BM",), {"BM": "9"}, BM_BASE)
    f = _one(STUDY, diary(BM="7"), "BM_REVIEW")
    assert (f.level, f.items, f.answers, f.baseline) == ("review", ("BM",), {"BM": "7"}, BM_BASE)


def test_finding_for_consecutive_rule_shows_todays_answer() -> None:
    f = _one(STUDY, diary(21, PAIN="6"), "WORSE_PAIN", [diary(20, PAIN="5")])
    assert f.level == "review"
    assert f.items == ("PAIN",)
    assert f.answers == {"PAIN": "6"}
    assert f.baseline == {"PAIN": 2.0}


def test_finding_for_multi_select_keeps_the_raw_answer() -> None:
    f = _one(STUDY, diary(EVENTS="ER,MED"), "HOSPITAL")
    assert f.answers == {"EVENTS": "ER,MED"}
    f = _one(STUDY, diary(EVENTS="ER,MED"), "NEW_MEDICINE")
    assert (f.level, f.answers) == ("review", {"EVENTS": "ER,MED"})


def test_fever_finding_shows_temperature_only() -> None:
    f = _one(STUDY, diary(3, FEVER="Y", TEMP="38.4"), "FEVER_EARLY")
    assert (f.items, f.answers) == (("TEMP",), {"TEMP": "38.4"})
