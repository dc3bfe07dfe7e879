"""Schedule: 24 months of diaries per patient, DST switches, windows, visits and re-anchoring."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from bot.domain.schedule import (
    Occurrence,
    closing_at,
    diary_occurrences,
    local_date_for_day,
    local_to_utc,
    next_occurrence,
    phase_for_day,
    reanchor,
    study_day,
    visit_reminders,
    visit_schedule,
)
from bot.domain.study import Study, load_study

TZS = ("Asia/Shanghai", "Europe/London", "America/New_York")
PHASES = ("baseline", "daily", "weekly")
EIGHT_PM = time(20, 0)


@pytest.fixture(scope="module")
def study() -> Study:
    return load_study()


def _local(dt: datetime, tz: str) -> datetime:
    return dt.astimezone(ZoneInfo(tz))


# --------------------------------------------------------------------------- calendar


@pytest.mark.parametrize(
    ("local", "day"),
    [
        (date(2027, 1, 10), 0),
        (date(2027, 1, 9), -1),
        (date(2027, 1, 3), -7),
        (date(2027, 4, 11), 91),
        (date(2029, 1, 9), 730),  # 2028 is a leap year
    ],
)
def test_study_day_and_back(local: date, day: int) -> None:
    injection = date(2027, 1, 10)
    assert study_day(injection, local) == day
    assert local_date_for_day(injection, day) == local


@pytest.mark.parametrize(
    ("day", "phase"),
    [
        (-8, None),
        (-7, "baseline"),
        (-1, "baseline"),
        (0, "daily"),
        (90, "daily"),
        (91, "weekly"),
        (92, "weekly"),
        (729, "weekly"),
        (730, None),
    ],
)
def test_phase_for_day(study: Study, day: int, phase: str | None) -> None:
    found = phase_for_day(study, day)
    assert (found.code if found else None) == phase


def test_local_to_utc_refuses_an_aware_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_to_utc(date(2027, 1, 1), time(20, 0, tzinfo=UTC), "Asia/Shanghai")


# --------------------------------------------------------------------------- 24 months


@pytest.mark.parametrize("tz", TZS)
def test_one_patient_through_24_months(study: Study, tz: str) -> None:
    injection = date(2027, 1, 10)
    occ = diary_occurrences(
        study, injection, tz, EIGHT_PM, enrolled_on=injection - timedelta(days=9)
    )

    per_phase = {code: [o for o in occ if o.phase == code] for code in PHASES}
    assert len(per_phase["baseline"]) == 7
    assert len(per_phase["daily"]) == 91
    assert len(per_phase["weekly"]) == len(range(91, 730, 7)) == 92
    assert len(occ) == 7 + 91 + 92
    assert [o.study_day for o in per_phase["baseline"]] == list(range(-7, 0))
    assert [o.study_day for o in per_phase["daily"]] == list(range(91))
    assert [o.study_day for o in per_phase["weekly"]] == list(range(91, 730, 7))
    assert {o.form for o in per_phase["weekly"]} == {"weekly"}
    assert {o.form for o in per_phase["daily"] + per_phase["baseline"]} == {"daily"}

    assert len({o.key for o in occ}) == len(occ)
    assert all(a.opens_at < b.opens_at for a, b in pairwise(occ))
    assert max(o.study_day for o in occ) <= 730
    closing = closing_at(study, injection, tz, EIGHT_PM)
    assert all(o.opens_at < closing for o in occ)
    # The last weekly diary (Day 728) would stay open 72 h, until Day 731; it closes when the
    # closing message ends the follow-up on Day 730 (48 h), so no diary outlives the study.
    assert occ[-1].study_day == 728
    assert occ[-1].closes_at == closing
    assert occ[-1].closes_at - occ[-1].opens_at == timedelta(hours=48)
    assert all(o.closes_at <= closing for o in occ)
    for o in occ:
        assert o.key == f"{o.phase}:{o.study_day}"
        assert o.opens_at.tzinfo is UTC
        assert o.local_date == injection + timedelta(days=o.study_day)
        wall = _local(o.opens_at, tz)
        assert (wall.date(), wall.time()) == (o.local_date, EIGHT_PM)


def test_closing_message_on_day_730_at_prompt_time(study: Study) -> None:
    at = closing_at(study, date(2027, 1, 10), "America/New_York", EIGHT_PM)
    assert _local(at, "America/New_York").replace(tzinfo=None) == datetime(2029, 1, 9, 20, 0)


# --------------------------------------------------------------------------- DST

SPRING = {
    "Asia/Shanghai": date(2027, 3, 14),  # no DST: an ordinary day
    "Europe/London": date(2027, 3, 28),
    "America/New_York": date(2027, 3, 14),
}
AUTUMN = {
    "Asia/Shanghai": date(2027, 11, 7),
    "Europe/London": date(2027, 10, 31),
    "America/New_York": date(2027, 11, 7),
}


SH, LON, NY = TZS


@pytest.mark.parametrize(
    ("tz", "switch", "prompt", "utc", "wall"),
    [
        # spring forward, 02:30 (New York's gap is 02:00-03:00: 02:30 moves to 03:30 EDT)
        (SH, SPRING[SH], time(2, 30), datetime(2027, 3, 13, 18, 30), time(2, 30)),
        (LON, SPRING[LON], time(2, 30), datetime(2027, 3, 28, 1, 30), time(2, 30)),
        (NY, SPRING[NY], time(2, 30), datetime(2027, 3, 14, 7, 30), time(3, 30)),
        # London's gap is 01:00-02:00: 01:30 moves forward to 02:30 BST
        (LON, SPRING[LON], time(1, 30), datetime(2027, 3, 28, 1, 30), time(2, 30)),
        # autumn back, 01:30: the first of the two instants (summer time)
        (SH, AUTUMN[SH], time(1, 30), datetime(2027, 11, 6, 17, 30), time(1, 30)),
        (LON, AUTUMN[LON], time(1, 30), datetime(2027, 10, 31, 0, 30), time(1, 30)),
        (NY, AUTUMN[NY], time(1, 30), datetime(2027, 11, 7, 5, 30), time(1, 30)),
    ],
)
def test_switch_day_prompt_is_exactly_one_instant(
    study: Study, tz: str, switch: date, prompt: time, utc: datetime, wall: time
) -> None:
    injection = switch - timedelta(days=10)  # the switch falls in the daily phase
    occ = diary_occurrences(study, injection, tz, prompt, from_day=0)

    on_switch = [o for o in occ if o.local_date == switch]
    assert len(on_switch) == 1
    (o,) = on_switch
    assert o.opens_at == utc.replace(tzinfo=UTC)
    local = _local(o.opens_at, tz)
    assert (local.date(), local.time()) == (switch, wall)
    # Ambiguous times resolve to the earlier instant (fold=0 and the summer offset).
    assert local.fold == 0

    around = [o for o in occ if abs((o.local_date - switch).days) <= 3]
    assert [o.local_date for o in around] == [switch + timedelta(days=d) for d in range(-3, 4)]
    gaps = {b.opens_at - a.opens_at for a, b in pairwise(around)}
    assert gaps <= {timedelta(hours=h) for h in (23, 24, 25)}


@pytest.mark.parametrize("tz", TZS)
@pytest.mark.parametrize("prompt", [time(0, 30), time(1, 30), time(2, 30), time(3, 0)])
def test_every_day_of_2027_gives_one_increasing_instant(tz: str, prompt: time) -> None:
    days = [date(2027, 1, 1) + timedelta(days=i) for i in range(365)]
    instants = [local_to_utc(d, prompt, tz) for d in days]
    assert len(set(instants)) == 365
    assert instants == sorted(instants)
    assert all(_local(i, tz).date() == d for i, d in zip(instants, days, strict=True))


@pytest.mark.parametrize(
    ("tz", "switch", "before", "after"),
    [
        ("Asia/Shanghai", SPRING["Asia/Shanghai"], 8, 8),
        ("Europe/London", SPRING["Europe/London"], 0, 1),
        ("America/New_York", SPRING["America/New_York"], -5, -4),
        ("Asia/Shanghai", AUTUMN["Asia/Shanghai"], 8, 8),
        ("Europe/London", AUTUMN["Europe/London"], 1, 0),
        ("America/New_York", AUTUMN["America/New_York"], -4, -5),
    ],
)
def test_evening_prompt_keeps_local_time_across_switch(
    study: Study, tz: str, switch: date, before: int, after: int
) -> None:
    injection = switch - timedelta(days=10)
    occ = {o.local_date: o for o in diary_occurrences(study, injection, tz, EIGHT_PM)}
    for day, offset in ((switch - timedelta(days=1), before), (switch + timedelta(days=1), after)):
        local = _local(occ[day].opens_at, tz)
        assert local.time() == EIGHT_PM
        assert local.utcoffset() == timedelta(hours=offset)
    assert local_to_utc(switch, EIGHT_PM, tz) == occ[switch].opens_at


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize("tz", TZS)
@pytest.mark.parametrize("prompt", [EIGHT_PM, time(7, 15), time(2, 30)])
def test_windows(study: Study, tz: str, prompt: time) -> None:
    injection = date(2027, 3, 1)  # spans both 2027 switches
    occ = diary_occurrences(study, injection, tz, prompt)
    assert occ
    for o in occ:
        assert o.remind_at - o.opens_at == timedelta(hours=3)
        if o.form == "daily":
            close = _local(o.closes_at, tz)
            assert close.date() == o.local_date + timedelta(days=1)
            assert close.time() == time(12, 0)
        elif o.study_day < 728:
            assert o.closes_at - o.opens_at == timedelta(hours=72)
        assert o.opens_at < o.remind_at < o.closes_at


def test_daily_window_on_switch_day_is_an_hour_shorter(study: Study) -> None:
    tz = "America/New_York"
    injection = SPRING[tz] - timedelta(days=1)  # the switch night follows Day 0
    occ = {o.study_day: o for o in diary_occurrences(study, injection, tz, EIGHT_PM)}
    # Day 0 is 2027-03-13: its window spans the switch night, 20:00 EST -> 12:00 EDT.
    assert occ[-1].closes_at - occ[-1].opens_at == timedelta(hours=16)
    assert occ[0].closes_at - occ[0].opens_at == timedelta(hours=15)
    assert occ[1].closes_at - occ[1].opens_at == timedelta(hours=16)


# --------------------------------------------------------------------------- baseline


@pytest.mark.parametrize(
    ("enrolled_day", "from_day", "expected_baseline", "first_daily"),
    [
        (None, None, list(range(-7, 0)), 0),
        (-10, None, list(range(-7, 0)), 0),
        (-7, None, list(range(-7, 0)), 0),
        (-3, None, [-3, -2, -1], 0),
        (-1, None, [-1], 0),
        (0, None, [], 0),
        (5, None, [], 0),  # enrolment trims only baseline ...
        (5, 5, [], 5),  # ... from_day trims the rest
        (-5, -2, [-2, -1], 0),
        (None, 40, [], 40),
    ],
)
def test_baseline_and_from_day(
    study: Study,
    enrolled_day: int | None,
    from_day: int | None,
    expected_baseline: list[int],
    first_daily: int,
) -> None:
    injection = date(2027, 6, 1)
    enrolled = None if enrolled_day is None else injection + timedelta(days=enrolled_day)
    occ = diary_occurrences(
        study, injection, "Asia/Shanghai", EIGHT_PM, enrolled_on=enrolled, from_day=from_day
    )
    assert [o.study_day for o in occ if o.phase == "baseline"] == expected_baseline
    daily = [o.study_day for o in occ if o.phase == "daily"]
    assert daily == list(range(first_daily, 91))
    assert [o.study_day for o in occ if o.phase == "weekly"] == list(range(91, 730, 7))


# --------------------------------------------------------------------------- visits

VISITS = [
    ("M1", 30, 7),
    ("M3", 91, 7),
    ("M6", 182, 14),
    ("M12", 365, 14),
    ("M18", 547, 14),
    ("M24", 730, 14),
]


def test_visit_schedule(study: Study) -> None:
    injection = date(2027, 1, 10)
    visits = visit_schedule(study, injection)
    assert [(v.code, v.day) for v in visits] == [(c, d) for c, d, _ in VISITS]
    for v, (_, day, window) in zip(visits, VISITS, strict=True):
        assert v.target_date == injection + timedelta(days=day)
        assert v.window_start == v.target_date - timedelta(days=window)
        assert v.window_end == v.target_date + timedelta(days=window)
        assert v.name


@pytest.mark.parametrize("tz", TZS)
def test_visit_reminders(study: Study, tz: str) -> None:
    injection = date(2027, 1, 10)
    reminders = visit_reminders(study, injection, tz)
    assert len(reminders) == 2 * len(VISITS)
    assert len({r.key for r in reminders}) == len(reminders)
    assert [r.send_at for r in reminders] == sorted(r.send_at for r in reminders)
    by_key = {r.key: r for r in reminders}
    for code, day, _ in VISITS:
        for before in (3, 1):
            r = by_key[f"visit:{code}:{before}"]
            assert r.days_before == before
            assert r.visit.code == code
            local = _local(r.send_at, tz)
            assert local.date() == injection + timedelta(days=day - before)
            assert local.time() == time(10, 0)


# --------------------------------------------------------------------------- next


def test_next_occurrence(study: Study) -> None:
    tz = "Asia/Shanghai"
    injection = date(2027, 1, 10)
    occ = diary_occurrences(study, injection, tz, EIGHT_PM, from_day=0)
    day0, day1 = occ[0], occ[1]
    assert next_occurrence(occ, day0.opens_at - timedelta(days=30)) == day0
    assert next_occurrence(occ, day0.opens_at + timedelta(hours=1)) == day0  # open now
    assert next_occurrence(occ, day0.closes_at) == day1  # closed exactly at noon
    assert next_occurrence(list(reversed(occ)), day0.closes_at) == day1
    assert next_occurrence(occ, occ[-1].closes_at) is None
    assert next_occurrence([], day0.opens_at) is None
    with pytest.raises(ValueError, match="aware"):
        next_occurrence(occ, datetime(2027, 1, 10, 12, 0))


# --------------------------------------------------------------------------- reanchor

TZ = "Asia/Shanghai"
OLD_INJECTION = date(2027, 1, 10)
# 10:00 local on 2027-02-01: old Day 22; old Day 21's window (opened 20:00 the evening before)
# is still open.
NOW = datetime(2027, 2, 1, 10, 0, tzinfo=ZoneInfo(TZ)).astimezone(UTC)


Plan = tuple[list[Occurrence], ...]  # old, new, to_delete, to_insert, resulting schedule


def _plan(study: Study, new_injection: date, keep_keys: set[str]) -> Plan:
    enrolled = OLD_INJECTION - timedelta(days=7)
    old = diary_occurrences(study, OLD_INJECTION, TZ, EIGHT_PM, enrolled_on=enrolled)
    new = diary_occurrences(study, new_injection, TZ, EIGHT_PM, enrolled_on=enrolled)
    to_delete, to_insert, to_rekey = reanchor(old, new, NOW, lambda o: o.key in keep_keys)
    rekeyed = {o.key: key for o, key in to_rekey}
    final = [
        replace(o, key=rekeyed.get(o.key, o.key)) for o in old if o not in to_delete
    ] + to_insert
    return old, new, to_delete, to_insert, final


@pytest.mark.parametrize(
    ("shift", "first_new_day", "rekeyed"),
    [
        # Day 0 moves 5 days later: now is new Day 17. Days 17..21 were already asked under the
        # old anchor (on other dates): they are asked again for their real dates, and the old
        # ones keep their study day under a key that names their date.
        (5, 17, range(17, 22)),
        # Day 0 moves 5 days earlier: now is new Day 27; Days 22..26 are past, never backfilled.
        (-5, 27, range(0)),
    ],
)
def test_reanchor_mid_phase(study: Study, shift: int, first_new_day: int, rekeyed: range) -> None:
    new_injection = OLD_INJECTION + timedelta(days=shift)
    # completed and currently open diaries are kept (all of them already opened)
    keep = {f"daily:{d}" for d in range(0, 22) if d not in (4, 9)} | {"baseline:-2"}
    old, new, to_delete, to_insert, final = _plan(study, new_injection, keep)

    past = [o for o in old if o.opens_at <= NOW]
    assert [o.study_day for o in past] == list(range(-7, 22))
    assert not set(past) & set(to_delete)  # past (also missed days 4 and 9) untouched
    assert to_delete == [o for o in old if o.opens_at > NOW]
    assert to_insert == [o for o in new if o.opens_at > NOW]  # the future, entirely

    inserted_days = [o.study_day for o in to_insert]
    assert inserted_days[0] == first_new_day
    assert [d for d in inserted_days if d <= 90] == list(range(first_new_day, 91))
    assert [o.key for o in to_insert if o.phase == "weekly"] == [
        f"weekly:{d}" for d in range(91, 730, 7)
    ]
    # the old diaries of those study days keep their day and date under a dated key
    for day in rekeyed:
        was = OLD_INJECTION + timedelta(days=day)
        [kept] = [o for o in final if o.key == f"daily:{day}@{was.isoformat()}"]
        assert (kept.study_day, kept.local_date) == (day, was)

    # no duplicate keys, and the future is entirely recomputed, one diary per local date
    assert len({o.key for o in final}) == len(final)
    future = [o for o in final if o.opens_at > NOW]
    assert future == to_insert
    assert len({o.local_date for o in final}) == len(final)
    assert all(o.local_date == new_injection + timedelta(days=o.study_day) for o in future)


def test_reanchor_after_a_late_postponement_asks_the_real_first_days(study: Study) -> None:
    """The injection is postponed 14 days, and the site re-anchors on old Day 3: the new
    baseline and the real Days 0-3 (the fever window) are asked; nothing is skipped."""
    enrolled = OLD_INJECTION - timedelta(days=7)
    old = diary_occurrences(study, OLD_INJECTION, TZ, EIGHT_PM, enrolled_on=enrolled)
    now = datetime(2027, 1, 13, 21, 0, tzinfo=ZoneInfo(TZ)).astimezone(UTC)  # old Day 3
    new_injection = OLD_INJECTION + timedelta(days=14)
    new = diary_occurrences(study, new_injection, TZ, EIGHT_PM, enrolled_on=enrolled)
    _, to_insert, to_rekey = reanchor(old, new, now, lambda o: False)
    days = [o.study_day for o in to_insert]
    assert days[: 7 + 4] == [-7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3]
    assert [key for _, key in to_rekey] == [
        "baseline:-7@2027-01-03",
        "baseline:-6@2027-01-04",
        "baseline:-5@2027-01-05",
        "baseline:-4@2027-01-06",
        "baseline:-3@2027-01-07",
        "baseline:-2@2027-01-08",
        "baseline:-1@2027-01-09",
        "daily:0@2027-01-10",
        "daily:1@2027-01-11",
        "daily:2@2027-01-12",
        "daily:3@2027-01-13",
    ]


def test_reanchor_keeps_a_future_occurrence_when_asked(study: Study) -> None:
    _, _, to_delete, to_insert, final = _plan(
        study, OLD_INJECTION + timedelta(days=3), {"daily:30"}
    )
    assert "daily:30" not in {o.key for o in to_delete}
    assert "daily:30" not in {o.key for o in to_insert}
    assert len({o.key for o in final}) == len(final)
    # the kept one is the old occurrence, not the recomputed one
    (kept,) = [o for o in final if o.key == "daily:30"]
    assert kept.local_date == OLD_INJECTION + timedelta(days=30)


def test_reanchor_same_date_is_a_no_op_for_kept_and_past(study: Study) -> None:
    old, _, to_delete, to_insert, final = _plan(study, OLD_INJECTION, set())
    assert {o.key for o in to_delete} == {o.key for o in to_insert}
    assert sorted(final, key=lambda o: o.study_day) == old


def test_reanchor_needs_aware_now(study: Study) -> None:
    occ = diary_occurrences(study, OLD_INJECTION, TZ, EIGHT_PM)
    with pytest.raises(ValueError, match="aware"):
        reanchor(occ, occ, datetime(2027, 2, 1), lambda o: False)
