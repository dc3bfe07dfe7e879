"""When each patient is asked for a diary and reminded of a visit, as exact UTC instants.

Everything is anchored to the patient's injection day (Day 0) in the patient's own time zone, as
the study definition says. The schedule is computed here, ahead of time, as a plain list of
instants, and stored by the caller; APScheduler is only used to wake the bot up at those instants.
We do not use cron triggers because they run on wall-clock time and skip or repeat a 02:30 job on
daylight-saving switch days (see shared/docs/engineering-notes.md).

Pure: no Telegram, no SQL, no clock. Whoever needs "now" passes it in, so every rule here can be
tested with fixed dates, including both daylight-saving switches.

Durations (`reminder_after_hours`, `close_after_hours`) are elapsed hours, added to UTC instants:
a 72-hour weekly window is 72 real hours even across a DST switch. Times of day
(`prompt_time`, `close_next_day_at`, `visit_reminder_at`) are local wall-clock times, converted
with `local_to_utc`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.domain.study import Phase, Study


@dataclass(frozen=True)
class Occurrence:
    """One diary the patient is asked to fill in, with its window.

    `key` is stable within a patient (``f"{phase}:{study_day}"``) so that storage can upsert by it
    and a re-computed schedule can be matched against the stored one (see `reanchor`).
    """

    key: str
    phase: str
    form: str
    study_day: int
    local_date: date
    opens_at: datetime
    remind_at: datetime
    closes_at: datetime


@dataclass(frozen=True)
class VisitDue:
    """A protocol clinic visit: the target date and the window the protocol allows around it."""

    code: str
    name: str
    day: int
    target_date: date
    window_start: date
    window_end: date


@dataclass(frozen=True)
class VisitReminder:
    """A message reminding the patient of a visit `days_before` the target date."""

    key: str
    visit: VisitDue
    days_before: int
    send_at: datetime


# --------------------------------------------------------------------------- calendar


def study_day(injection_date: date, local_date: date) -> int:
    """Study day of a local calendar date: Day 0 is the injection day, the day before is -1.

    Unlike protocols that skip Day 0 (..., -1, 1, ...), the clinical brief counts the injection
    day itself as Day 0 and the daily diary runs Days 0-90, so this is a plain day difference.
    """
    return (local_date - injection_date).days


def local_date_for_day(injection_date: date, day: int) -> date:
    """The patient's local calendar date of a study day (inverse of `study_day`)."""
    return injection_date + timedelta(days=day)


def local_to_utc(local_date: date, at: time, tz: str) -> datetime:
    """The UTC instant of a local wall-clock time, defined for every date, DST-safe.

    A wall-clock time can be missing or doubled on a switch day, but a diary prompt must happen
    exactly once, so each (date, time) maps to exactly one instant. We use ``fold=0`` (PEP 495):

    - A time inside the spring-forward gap does not exist (02:30 in America/New_York on
      2027-03-14). It is read with the offset in force before the switch, which moves it forward
      by the size of the gap: 02:30 EST = 07:30 UTC = 03:30 EDT. The prompt comes an hour later
      on the wall clock instead of being dropped.
    - A time inside the autumn overlap happens twice (01:30 in New York on 2027-11-07). We take
      the first instant (01:30 EDT = 05:30 UTC), so the prompt is not sent twice.

    `at` must be a naive time: the zone is the patient's, given by `tz`.
    """
    if at.tzinfo is not None:
        raise ValueError("local_to_utc: `at` must be a naive local time; the zone comes from tz")
    local = datetime.combine(local_date, at.replace(fold=0), tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)


def _require_aware(now: datetime) -> None:
    """Refuse naive datetimes: mixing them with our UTC instants would silently be wrong."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be an aware datetime (UTC preferred)")


# --------------------------------------------------------------------------- diaries


def phase_for_day(study: Study, day: int) -> Phase | None:
    """The phase whose range covers a study day, or None outside every phase.

    This is about coverage, not about whether a diary is due that day: Day 92 belongs to the
    weekly phase although the weekly diary is on Days 91, 98, ... Use `diary_occurrences` for
    the actual diary days.
    """
    for ph in study.phases:
        if ph.first_day <= day <= ph.last_day:
            return ph
    return None


def _phase_days(study: Study, phase: Phase) -> range:
    """The study days of one phase's diaries, never past the study's closing day.

    Capping at `closing_day` keeps a study file whose last phase overruns the closing day from
    prompting a patient who has already been thanked and signed off.
    """
    last = min(phase.last_day, study.closing_day)
    return range(phase.first_day, last + 1, phase.every_days)


def _occurrence(
    phase: Phase, injection_date: date, day: int, tz: str, prompt_time: time
) -> Occurrence:
    local = local_date_for_day(injection_date, day)
    opens = local_to_utc(local, prompt_time, tz)
    if phase.close_next_day_at is not None:
        closes = local_to_utc(local + timedelta(days=1), phase.close_next_day_at, tz)
    else:
        # study.py guarantees exactly one of the two closing rules is set.
        assert phase.close_after_hours is not None
        closes = opens + timedelta(hours=phase.close_after_hours)
    return Occurrence(
        key=f"{phase.code}:{day}",
        phase=phase.code,
        form=phase.form,
        study_day=day,
        local_date=local,
        opens_at=opens,
        remind_at=opens + timedelta(hours=phase.reminder_after_hours),
        closes_at=closes,
    )


def diary_occurrences(
    study: Study,
    injection_date: date,
    tz: str,
    prompt_time: time,
    *,
    enrolled_on: date | None = None,
    from_day: int | None = None,
) -> list[Occurrence]:
    """Every diary of every phase for one patient, ordered by study day.

    Baseline (negative study days) only exists from the enrolment day on: a patient enrolled on
    Day -3 gets Days -3..-1, one enrolled on or after Day 0 gets none. We never ask for diaries
    about days before the patient joined, because there is no backfilling (FDA PRO guidance).
    Without `enrolled_on` all baseline days are returned. Enrolment does not trim Days >= 0: use
    `from_day` (e.g. the current study day) to drop earlier days, for instance after a late
    enrolment or a restart.

    Windows: the diary opens at `prompt_time` local, the reminder is `reminder_after_hours`
    later, and it closes either the next local day at `close_next_day_at` or
    `close_after_hours` after opening, whichever the phase defines, and never after the
    closing message.
    """
    # No window outlives the follow-up: the last weekly diary (Day 728, open 72 h) closes when
    # the closing message (Day 730) thanks the patient and ends the diary.
    end = closing_at(study, injection_date, tz, prompt_time)
    first_allowed: int | None = None
    if enrolled_on is not None:
        first_allowed = study_day(injection_date, enrolled_on)
    out: list[Occurrence] = []
    for phase in sorted(study.phases, key=lambda p: p.first_day):
        for day in _phase_days(study, phase):
            if day < 0 and first_allowed is not None and day < first_allowed:
                continue
            if from_day is not None and day < from_day:
                continue
            occ = _occurrence(phase, injection_date, day, tz, prompt_time)
            if occ.closes_at > end:
                occ = replace(occ, closes_at=end, remind_at=min(occ.remind_at, end))
            out.append(occ)
    out.sort(key=lambda o: o.study_day)
    return out


def closing_at(study: Study, injection_date: date, tz: str, prompt_time: time) -> datetime:
    """When the closing (thank-you, end of follow-up) message goes out: `closing_day` at the
    patient's prompt time, the hour the patient is used to hearing from the bot."""
    return local_to_utc(local_date_for_day(injection_date, study.closing_day), prompt_time, tz)


def next_occurrence(occurrences: Sequence[Occurrence], now: datetime) -> Occurrence | None:
    """The diary that is open now or comes next (the first whose window has not closed).

    Occurrences are compared by opening time, so the answer does not depend on the caller
    keeping the list sorted.
    """
    _require_aware(now)
    pending = [o for o in occurrences if o.closes_at > now]
    if not pending:
        return None
    return min(pending, key=lambda o: (o.opens_at, o.study_day))


def relabelled_days(
    stored: Sequence[tuple[int, date, int]], injection_date: date
) -> list[tuple[int, int]]:
    """After a re-anchor, the stored diaries whose study day changes: (id, new study day).

    ``stored`` holds (id, local date, stored study day). Every diary is relabelled from the new
    Day 0 (its date does not move, so its study day does): exports, charts and rules then agree
    that a diary answered after the real injection is Day 0 or later and never baseline, and that
    the diaries dated before the new Day 0 are the baseline. The occurrence key is left as it
    was (``daily:2`` or ``daily:2@2027-01-12``) so the original label stays traceable.
    """
    out = []
    for occ_id, local_date, day in stored:
        new = study_day(injection_date, local_date)
        if new != day:
            out.append((occ_id, new))
    return out


def reanchor(
    old: Sequence[Occurrence],
    new: Sequence[Occurrence],
    now: datetime,
    keep: Callable[[Occurrence], bool],
) -> tuple[list[Occurrence], list[Occurrence], list[tuple[Occurrence, str]]]:
    """Plan for moving a patient's injection date: what to delete, insert and re-key.

    REDCap's known pitfall is that invitations already scheduled do not move when the anchor
    changes; we recompute instead, but never rewrite history:

    - old occurrences that already opened (``opens_at <= now``) stay, whatever their status, as
      do those for which `keep` is true (e.g. completed or currently prompted ones);
    - the other old ones (future, not kept) are deleted;
    - every new occurrence that opens after `now` is inserted: the future follows the new
      anchor completely. When Day 0 moves later, the days after the real injection (the fever
      window, the acute safety days) are asked even if diaries with the same study-day numbers
      were already asked under the old anchor;
    - such an old occurrence is re-keyed with its own date, ``daily:2`` →
      ``daily:2@2027-01-12``, so keys stay unique (its study day is then relabelled from the
      new Day 0 by :func:`relabelled_days`; the key keeps the original label);
    - a future old occurrence that `keep` holds stays as it is, and the new one of the same
      key is not inserted;
    - new occurrences that would already have opened are not inserted: no backfilling.

    Returns (to_delete, to_insert, to_rekey as (old occurrence, its new key)).
    """
    _require_aware(now)
    to_delete: list[Occurrence] = []
    past: dict[str, Occurrence] = {}
    kept_future: set[str] = set()
    for o in old:
        if o.opens_at > now and not keep(o):
            to_delete.append(o)
        elif o.opens_at > now:
            kept_future.add(o.key)
        else:
            past[o.key] = o
    to_insert = [n for n in new if n.opens_at > now and n.key not in kept_future]
    to_rekey = [
        (past[n.key], f"{n.key}@{past[n.key].local_date.isoformat()}")
        for n in to_insert
        if n.key in past
    ]
    return to_delete, to_insert, to_rekey


# --------------------------------------------------------------------------- visits


def visit_schedule(study: Study, injection_date: date) -> list[VisitDue]:
    """The protocol visits with target dates and their allowed windows (target ± window_days),
    ordered by study day. Dates are calendar dates: the clinic books days, not instants."""
    out = []
    for v in sorted(study.visits, key=lambda v: v.day):
        target = local_date_for_day(injection_date, v.day)
        window = timedelta(days=v.window_days)
        out.append(
            VisitDue(
                code=v.code,
                name=v.name,
                day=v.day,
                target_date=target,
                window_start=target - window,
                window_end=target + window,
            )
        )
    return out


def visit_reminders(study: Study, injection_date: date, tz: str) -> list[VisitReminder]:
    """Reminders `days_before` each visit's target date at `visit_reminder_at` local time,
    ordered by send time.

    Sent at a fixed daytime hour rather than the diary prompt time, so a reminder to book or
    attend a clinic visit arrives when the clinic can be called.
    """
    out = []
    for visit in visit_schedule(study, injection_date):
        for before in sorted(set(study.visit_reminder_days), reverse=True):
            send_on = visit.target_date - timedelta(days=before)
            out.append(
                VisitReminder(
                    key=f"visit:{visit.code}:{before}",
                    visit=visit,
                    days_before=before,
                    send_at=local_to_utc(send_on, study.visit_reminder_at, tz),
                )
            )
    out.sort(key=lambda r: (r.send_at, r.key))
    return out
