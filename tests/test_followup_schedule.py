"""The 24-month follow-up at the scheduler level: every prompt, reminder, visit reminder and the
closing message, at the right local time, across daylight-saving switches, and nothing after
Day 730. The fake clock drives DiaryScheduler.tick(); what it decided is read from the outbox
and the audit trail (nothing is delivered, so two years take seconds).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from bot.clock import from_iso
from bot.domain.schedule import closing_at, diary_occurrences, local_to_utc, visit_schedule
from bot.domain.study import Study
from tests.followup_support import (
    clock,
    follow_alarm,
    linked_patient,
    local,
    offline_bot,
    prompts,
    rows,
    visit,
)

PER_PHASE = {"baseline": 7, "daily": 91, "weekly": len(range(91, 730, 7))}
EIGHT_PM = time(20, 0)


def expected_per_phase(study: Study) -> dict[str, int]:
    """From the study definition itself (not a copy of it)."""
    out = {}
    for ph in study.phases:
        out[ph.code] = len(
            range(ph.first_day, min(ph.last_day, study.closing_day) + 1, ph.every_days)
        )
    return out


async def test_study_definition_gives_the_expected_counts(study: Study) -> None:
    assert expected_per_phase(study) == PER_PHASE == {"baseline": 7, "daily": 91, "weekly": 92}


async def test_one_patient_through_24_months(tmp_path: Path, study: Study) -> None:
    """Shanghai: 190 prompts and 190 reminders at 20:00 / 23:00, 12 visit reminders at 10:00 on
    the right days, the closing message on Day 730 at 20:00, then silence."""
    tz = "Asia/Shanghai"
    injection = date(2027, 1, 12)
    async with offline_bot(tmp_path / "d.sqlite3", study, datetime(2027, 1, 1, tzinfo=UTC)) as bot:
        await linked_patient(bot, "RP-001", injection, tz)
        occs = diary_occurrences(study, injection, tz, EIGHT_PM)
        events = await rows(bot, "SELECT due_at FROM followup_events ORDER BY due_at")
        assert len(events) == 13  # 6 visits x 2 reminders + closing
        instants = [o.opens_at for o in occs] + [o.remind_at for o in occs]
        instants += [from_iso(e[0]) for e in events]
        await visit(bot, instants)

        sent = await prompts(bot, "RP-001")
        assert Counter(r["phase"] for r in sent) == expected_per_phase(study)
        for r in sent:
            assert r["prompted_at"] == r["opens_at"] == r["queued_at"]
            at = local(r["opens_at"], tz)
            assert (at.date().isoformat(), at.time()) == (r["local_date"], EIGHT_PM)
        reminders = await prompts(bot, "RP-001", "reminded")
        assert len(reminders) == len(sent) == 190
        assert all(local(r["reminded_at"], tz).time() == time(23, 0) for r in reminders)
        audit = await rows(bot, "SELECT COUNT(*) FROM audit WHERE action = 'diary_prompted'")
        assert audit[0][0] == 190

        # Visit reminders: 3 days and 1 day before each target, 10:00 local, once each.
        visits = await rows(
            bot,
            "SELECT e.*, x.payload FROM followup_events e JOIN outbox x"
            " ON x.ref = 'followup:' || e.id WHERE e.kind = 'visit_reminder' ORDER BY e.due_at",
        )
        expected = [
            (v.target_date - timedelta(days=before), v.code)
            for v in visit_schedule(study, injection)
            for before in (3, 1)
        ]
        got = [(local(r["done_at"], tz).date(), json.loads(r["data"])["visit"]) for r in visits]
        assert got == expected
        assert all(local(r["done_at"], tz).time() == time(10, 0) for r in visits)
        first = json.loads(visits[0]["payload"])["text"]
        # Day 30 = 11 February 2027, window +-7 days, in the patient's language (en).
        assert "Month 1 visit is in 3 days, on 11 February 2027" in first
        assert "from 4 February 2027 to 18 February 2027" in first
        # Closing on Day 730 at the prompt time; the patient is completed.
        closing = closing_at(study, injection, tz, EIGHT_PM)
        row = await rows(
            bot,
            "SELECT e.done_at, x.payload FROM followup_events e JOIN outbox x"
            " ON x.ref = 'followup:' || e.id WHERE e.kind = 'closing'",
        )
        assert from_iso(row[0]["done_at"]) == closing
        assert "complete" in json.loads(row[0]["payload"])["text"]
        patient = await rows(bot, "SELECT status FROM patients WHERE subject = 'RP-001'")
        assert patient[0][0] == "completed"
        assert all(from_iso(r["opens_at"]) < closing for r in sent)

        # Nothing after Day 730: two more months, day by day.
        before = (await rows(bot, "SELECT COUNT(*) FROM outbox"))[0][0]
        for _ in range(60):
            await clock(bot).advance(days=1)
        assert (await rows(bot, "SELECT COUNT(*) FROM outbox"))[0][0] == before
        open_left = await rows(
            bot,
            "SELECT COUNT(*) FROM occurrences WHERE status IN"
            " ('scheduled', 'prompted', 'reminded')",
        )
        assert open_left[0][0] == 0


@pytest.mark.parametrize("tz", ["Europe/London", "America/New_York"])
async def test_24_months_across_both_dst_switches(tmp_path: Path, study: Study, tz: str) -> None:
    """Every prompt at 20:00 local although the UTC hour changes twice a year; one prompt per
    diary; none after Day 730."""
    injection = date(2027, 2, 10)
    async with offline_bot(tmp_path / "d.sqlite3", study, datetime(2027, 2, 1, tzinfo=UTC)) as bot:
        await linked_patient(bot, "RP-002", injection, tz)
        occs = diary_occurrences(study, injection, tz, EIGHT_PM)
        closing = closing_at(study, injection, tz, EIGHT_PM)
        await visit(bot, [o.opens_at for o in occs] + [closing, closing + timedelta(days=10)])
        sent = await prompts(bot, "RP-002")
        assert Counter(r["phase"] for r in sent) == expected_per_phase(study)
        assert len({r["id"] for r in sent}) == len(sent)  # one prompt per occurrence
        utc_hours = Counter(from_iso(r["prompted_at"]).hour for r in sent)
        assert len(utc_hours) == 2  # winter and summer time
        for r in sent:
            at = local(r["prompted_at"], tz)
            assert (at.date().isoformat(), at.time()) == (r["local_date"], EIGHT_PM)
            assert from_iso(r["prompted_at"]) < closing
        # Both switches fall inside the follow-up, twice.
        days = {r["local_date"] for r in sent}
        switches = {
            "Europe/London": ("2027-03-28", "2028-03-26"),
            "America/New_York": ("2027-03-14", "2028-03-12"),
        }[tz]
        assert switches[0] in days  # spring 2027 is in the daily phase
        status = await rows(bot, "SELECT status FROM patients WHERE subject = 'RP-002'")
        assert status[0][0] == "completed"


@pytest.mark.parametrize(
    ("prompt", "injection", "switch_day", "utc_on_switch"),
    [
        # 02:30 does not exist on 2027-03-14 in New York: it goes out at 03:30 EDT (07:30 UTC).
        (
            time(2, 30),
            date(2027, 3, 1),
            date(2027, 3, 14),
            datetime(2027, 3, 14, 7, 30, tzinfo=UTC),
        ),
        # 01:30 happens twice on 2027-11-07: only the first one (EDT, 05:30 UTC).
        (
            time(1, 30),
            date(2027, 10, 25),
            date(2027, 11, 7),
            datetime(2027, 11, 7, 5, 30, tzinfo=UTC),
        ),
    ],
)
async def test_dst_gap_and_overlap_neither_drop_nor_double_a_prompt(
    tmp_path: Path,
    study: Study,
    prompt: time,
    injection: date,
    switch_day: date,
    utc_on_switch: datetime,
) -> None:
    """Driven by the scheduler's own alarm (next_change), as APScheduler would wake it."""
    tz = "America/New_York"
    start = datetime.combine(injection, time(0, 0), tzinfo=UTC)
    async with offline_bot(tmp_path / "d.sqlite3", study, start) as bot:
        await linked_patient(bot, "RP-003", injection, tz, prompt)
        until = start + timedelta(days=20)
        await follow_alarm(bot, until)
        sent = await prompts(bot, "RP-003")
        days = [date.fromisoformat(r["local_date"]) for r in sent]
        assert days == sorted(set(days))  # one prompt per local day, none twice
        # Linked at midnight UTC on the evening before Day 0: the Day -1 window (02:30 local)
        # was already open, so it is prompted at once; every later one at its opening time.
        expected = [
            d
            for d in (injection + timedelta(days=i) for i in range(-1, 21))
            if local_to_utc(d, prompt, tz) <= until
        ]
        assert days == expected
        assert from_iso(sent[0]["prompted_at"]) == start
        for r in sent[1:]:
            d = date.fromisoformat(r["local_date"])
            assert from_iso(r["prompted_at"]) == local_to_utc(d, prompt, tz)
        on_switch = [r for r in sent if r["local_date"] == switch_day.isoformat()]
        assert len(on_switch) == 1
        assert from_iso(on_switch[0]["prompted_at"]) == utc_on_switch
        # The alarm also woke for every reminder, exactly at its time. The Day -1 diary was
        # prompted after its reminder time, so that prompt was its only message.
        reminders = await prompts(bot, "RP-003", "reminded")
        assert [r["local_date"] for r in reminders] == [r["local_date"] for r in sent[1:]]
        assert [r["reminded_at"] for r in reminders] == [r["remind_at"] for r in reminders]
