"""Pause, resume, withdraw and re-anchor at the service level (bot/followup/lifecycle.py), with
the scheduler ticking through the fake clock: paused days are paused (not missed), a withdrawn
patient gets nothing more and keeps their data, a re-anchor recomputes only the future, every
change is audited, the patient is told, and every refusal writes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from bot.clock import from_iso
from bot.domain.schedule import local_to_utc
from bot.domain.study import Study
from bot.followup import lifecycle
from bot.followup.compliance_report import patient_compliance
from bot.followup.lifecycle import LifecycleError
from bot.services import patient_settings
from tests.followup_support import (
    clock,
    complete_diary,
    linked_patient,
    occurrence_rows,
    offline_bot,
    outbox_texts,
    prompts,
    rows,
)

TZ = "Asia/Shanghai"
INJECTION = date(2027, 3, 1)
START = datetime(2027, 2, 28, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, Day -1


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local Shanghai wall-clock time on a study day (of the original anchor)."""
    return local_to_utc(INJECTION + timedelta(days=day), time(hour, minute), TZ)


async def by_key(bot, subject: str = "RP-001") -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {r["key"]: dict(r) for r in await occurrence_rows(bot, subject)}


async def audit_count(bot) -> int:  # type: ignore[no-untyped-def]
    return (await rows(bot, "SELECT COUNT(*) FROM audit"))[0][0]


async def test_pause_across_a_window_marks_days_paused_not_missed(
    tmp_path: Path, study: Study
) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await linked_patient(bot, "RP-001", INJECTION, TZ)
        c = clock(bot)
        await c.set(at(-1, 21))
        occ = await by_key(bot)
        await complete_diary(bot, "RP-001", occ["baseline:-1"]["id"])
        for when in (at(0, 20), at(0, 23), at(1, 10)):  # Day 0: prompted, reminded, still open
            await c.set(when)
        assert (await by_key(bot))["daily:0"]["status"] == "reminded"

        change = await lifecycle.pause(bot.rt, "RP-001", actor="staff:9001", reason="in hospital")
        assert (change.old_status, change.new_status, change.notified) == ("active", "paused", True)
        occ = await by_key(bot)
        assert occ["daily:0"]["status"] == "paused"  # open window: paused, never missed
        assert {occ[f"daily:{d}"]["status"] for d in range(1, 91)} == {"paused"}

        await c.set(at(4, 10))  # three windows open and close while paused
        occ = await by_key(bot)
        assert [occ[f"daily:{d}"]["status"] for d in range(0, 4)] == ["paused"] * 4
        assert not [r for r in await prompts(bot, "RP-001") if r["key"] in ("daily:1", "daily:2")]
        missed = await rows(bot, "SELECT COUNT(*) FROM occurrences WHERE status = 'missed'")
        assert missed[0][0] == 0
        patient = await bot.rt.db.fetchone("SELECT * FROM patients WHERE subject = 'RP-001'")
        assert patient is not None and patient["status"] == "paused"
        comp = await patient_compliance(
            bot.rt.db.conn, await lifecycle.find_patient(bot.rt.db.conn, "RP-001"), c.now()
        )
        assert (comp.summary.overall.completed, comp.summary.overall.due) == (1, 1)

        change = await lifecycle.resume(bot.rt, "RP-001", actor="cli")
        assert change.new_status == "active"
        occ = await by_key(bot)
        # Day 3's window (opened yesterday 20:00, closes today noon) is open again: prompted now.
        assert occ["daily:3"]["status"] == "prompted"
        assert from_iso(occ["daily:3"]["prompted_at"]) == at(4, 10)
        assert [occ[f"daily:{d}"]["status"] for d in range(0, 3)] == ["paused"] * 3
        await c.set(at(4, 20))
        assert (await by_key(bot))["daily:4"]["status"] == "prompted"

        texts = await outbox_texts(bot, 501)
        assert any("paused your diary" in x for x in texts)
        assert any("Your diary starts again" in x for x in texts)
        entries = await rows(
            bot, "SELECT actor, action, reason FROM audit WHERE action IN ('pause', 'resume')"
        )
        assert [tuple(e) for e in entries] == [
            ("staff:9001", "pause", "in hospital"),
            ("cli", "resume", None),
        ]


async def test_resume_inside_the_prompted_window_does_not_prompt_again(
    tmp_path: Path, study: Study
) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await linked_patient(bot, "RP-001", INJECTION, TZ)
        c = clock(bot)
        await c.set(at(0, 20))
        await c.set(at(0, 20, 30))
        await lifecycle.pause(bot.rt, "RP-001", actor="cli")
        await c.set(at(0, 21))
        await lifecycle.resume(bot.rt, "RP-001", actor="cli")
        occ = await by_key(bot)
        assert occ["daily:0"]["status"] == "prompted"
        await c.set(at(0, 23))  # the usual reminder, once
        sent = [r["key"] for r in await prompts(bot, "RP-001")]
        assert sent.count("daily:0") == 1
        reminded = [r["key"] for r in await prompts(bot, "RP-001", "reminded")]
        assert reminded.count("daily:0") == 1


async def test_prompt_time_changed_while_paused_applies_after_resume(
    tmp_path: Path, study: Study
) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        patient = await linked_patient(bot, "RP-001", INJECTION, TZ)
        c = clock(bot)
        await c.set(at(0, 10))
        await lifecycle.pause(bot.rt, "RP-001", actor="cli")
        paused = await lifecycle.find_patient(bot.rt.db.conn, "RP-001")
        await patient_settings.set_prompt_time(bot.rt, paused, time(8, 0))
        await lifecycle.resume(bot.rt, "RP-001", actor="cli")
        occ = await by_key(bot)
        assert from_iso(occ["daily:1"]["opens_at"]) == at(1, 8)
        assert patient.prompt_time == time(20, 0)


async def test_withdraw_stops_everything_and_keeps_the_data(tmp_path: Path, study: Study) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await linked_patient(bot, "RP-001", INJECTION, TZ)
        c = clock(bot)
        await c.set(at(-1, 21))
        await complete_diary(bot, "RP-001", (await by_key(bot))["baseline:-1"]["id"])
        answers_before = await rows(bot, "SELECT * FROM answers ORDER BY id")
        await c.set(at(0, 10))
        change = await lifecycle.withdraw(
            bot.rt, "RP-001", actor="staff:9001", reason="consent withdrawn"
        )
        assert change.new_status == "withdrawn" and change.notified
        before = (await rows(bot, "SELECT COUNT(*) FROM outbox"))[0][0]
        await c.set(at(40, 10))  # past the Month 1 visit reminders too
        assert (await rows(bot, "SELECT COUNT(*) FROM outbox"))[0][0] == before
        occ = await by_key(bot)
        assert occ["baseline:-1"]["status"] == "completed"
        assert {o["status"] for k, o in occ.items() if k != "baseline:-1"} == {"withdrawn"}
        assert [tuple(r) for r in await rows(bot, "SELECT * FROM answers ORDER BY id")] == [
            tuple(r) for r in answers_before
        ]
        pending = await rows(bot, "SELECT COUNT(*) FROM followup_events WHERE status = 'pending'")
        assert pending[0][0] == 0
        texts = await outbox_texts(bot, 501)
        assert "no longer take part" in texts[-1]
        entry = await rows(bot, "SELECT old_value, reason FROM audit WHERE action = 'withdraw'")
        assert tuple(entry[0]) == ("active", "consent withdrawn")

        # Nothing more can be done to a withdrawn patient; each refusal writes nothing.
        n = await audit_count(bot)
        for call in (
            lifecycle.pause(bot.rt, "RP-001", actor="cli"),
            lifecycle.resume(bot.rt, "RP-001", actor="cli"),
            lifecycle.withdraw(bot.rt, "RP-001", actor="cli"),
            lifecycle.reanchor_patient(bot.rt, "RP-001", date(2027, 3, 5), actor="cli"),
        ):
            with pytest.raises(LifecycleError, match="has withdrawn"):
                await call
        assert await audit_count(bot) == n


async def test_reanchor_forward_mid_phase(tmp_path: Path, study: Study) -> None:
    """Day 0 moves 5 days later on Day 20: what already happened stays (a completed entry
    keeps its study day and date, under a key that names the date), the future follows the new
    anchor entirely: tonight is new Day 15, and Days 15-19 are asked again for their real dates
    (domain.schedule.reanchor)."""
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await linked_patient(bot, "RP-001", INJECTION, TZ)
        c = clock(bot)
        for day in (17, 18, 19):
            await c.set(at(day, 21))
            await complete_diary(bot, "RP-001", (await by_key(bot))[f"daily:{day}"]["id"])
        await c.set(at(20, 10))
        before = await by_key(bot)
        new_anchor = INJECTION + timedelta(days=5)
        change = await lifecycle.reanchor_patient(
            bot.rt, "RP-001", new_anchor, actor="staff:9001", reason="injection postponed"
        )
        after = await by_key(bot)
        for day in (17, 18, 19):  # completed entries: a dated key, relabelled from new Day 0
            dated = f"daily:{day}@{(INJECTION + timedelta(days=day)).isoformat()}"
            assert after[dated] == {**before[f"daily:{day}"], "key": dated, "study_day": day - 5}
            assert after[dated]["status"] == "completed"
        # Today (old Day 20) is new Day 15, asked tonight; every later day follows the new anchor.
        assert after["daily:15"]["local_date"] == "2027-03-21"
        assert after["daily:20"]["local_date"] == (new_anchor + timedelta(days=20)).isoformat()
        upcoming = [o for o in after.values() if from_iso(o["opens_at"]) > c.now()]
        assert min(o["local_date"] for o in upcoming) == "2027-03-21"
        assert change.detail["removed"] > 0 and change.detail["added"] > 0
        # Visit reminders follow the new Day 30.
        keys = [
            r[0]
            for r in await rows(
                bot, "SELECT key FROM followup_events WHERE status = 'pending' ORDER BY due_at"
            )
        ]
        assert keys[0] == "visit:M1:3:2027-04-05"
        entry = await rows(
            bot, "SELECT actor, old_value, new_value, reason FROM audit WHERE action = 'reanchor'"
        )
        assert entry[0]["actor"] == "staff:9001"
        assert entry[0]["old_value"] == "2027-03-01"
        assert json.loads(entry[0]["new_value"])["injection_date"] == "2027-03-06"
        assert entry[0]["reason"] == "injection postponed"
        assert "day 0) is now 6 March 2027" in (await outbox_texts(bot, 501))[-1]

        for evening in range(20, 26):  # 21 to 26 March at 20:00 (new Days 15 to 20)
            await c.set(at(evening, 20))
        last = (await prompts(bot, "RP-001"))[-1]
        assert (last["key"], last["local_date"]) == ("daily:20", "2027-03-26")
        prompted = [r["local_date"] for r in await prompts(bot, "RP-001")]
        # no gap: every evening from the re-anchor on has its diary
        assert {f"2027-03-{d}" for d in range(21, 27)} <= set(prompted)


async def test_reanchor_backward_mid_phase(tmp_path: Path, study: Study) -> None:
    """Day 0 moves 5 days earlier on Day 20: tonight's diary is new Day 25, the daily phase
    ends 5 days sooner, nothing already asked is asked again."""
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await linked_patient(bot, "RP-001", INJECTION, TZ)
        c = clock(bot)
        await c.set(at(19, 21))
        await complete_diary(bot, "RP-001", (await by_key(bot))["daily:19"]["id"])
        await c.set(at(20, 10))
        new_anchor = INJECTION - timedelta(days=5)
        await lifecycle.reanchor_patient(bot.rt, "RP-001", new_anchor, actor="cli")
        after = await by_key(bot)
        assert after["daily:19"]["status"] == "completed"
        assert after["daily:19"]["local_date"] == "2027-03-20"  # answered for its own day
        assert "daily:20" not in after  # old tonight (21 March) is now Day 25
        assert after["daily:25"]["local_date"] == "2027-03-21"
        assert not any(f"daily:{d}" in after for d in range(20, 25))
        assert after["daily:90"]["local_date"] == "2027-05-25"
        assert after["weekly:91"]["local_date"] == "2027-05-26"
        await c.set(at(20, 20))
        last = (await prompts(bot, "RP-001"))[-1]
        assert (last["key"], last["local_date"]) == ("daily:25", "2027-03-21")
        dates = [r["local_date"] for r in await occurrence_rows(bot, "RP-001")]
        assert len(dates) == len(set(dates))  # one diary per calendar day


async def test_reanchor_while_paused_keeps_the_future_paused(tmp_path: Path, study: Study) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await linked_patient(bot, "RP-001", INJECTION, TZ)
        c = clock(bot)
        await c.set(at(3, 10))
        await lifecycle.pause(bot.rt, "RP-001", actor="cli")
        await lifecycle.reanchor_patient(
            bot.rt, "RP-001", INJECTION + timedelta(days=7), actor="cli"
        )
        future = [o for o in (await by_key(bot)).values() if from_iso(o["opens_at"]) > c.now()]
        assert future and {o["status"] for o in future} == {"paused"}
        await c.set(at(6, 21))
        assert not [r for r in await prompts(bot, "RP-001") if from_iso(r["opens_at"]) > at(3, 10)]


async def test_reanchor_of_an_invited_subject_changes_only_the_date(
    tmp_path: Path, study: Study
) -> None:
    from bot.services.enrolment import enroll, link_chat

    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        e = await enroll(bot.rt, "RP-009", INJECTION, "en", TZ, time(20, 0))
        await lifecycle.reanchor_patient(bot.rt, "RP-009", date(2027, 3, 4), actor="cli")
        assert await occurrence_rows(bot, "RP-009") == []
        assert (await link_chat(bot.rt, 777, 777, e.code)).status == "ok"
        first = (await occurrence_rows(bot, "RP-009"))[0]
        assert first["key"] == "baseline:-4"  # enrolled on 28 Feb = Day -4 of the new anchor


@pytest.mark.parametrize(
    ("subject", "new_date", "message"),
    [
        ("RP-404", date(2027, 3, 5), "There is no patient RP-404."),
        ("RP-001", INJECTION, "Day 0 of RP-001 is already 2027-03-01."),
        ("RP-001", date(2020, 1, 1), "would already be over"),
    ],
)
async def test_bad_reanchor_changes_nothing(
    tmp_path: Path, study: Study, subject: str, new_date: date, message: str
) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await linked_patient(bot, "RP-001", INJECTION, TZ)
        before = await by_key(bot)
        n = await audit_count(bot)
        with pytest.raises(LifecycleError, match=message.replace(".", r"\.")):
            await lifecycle.reanchor_patient(bot.rt, subject, new_date, actor="cli")
        assert await by_key(bot) == before
        assert await audit_count(bot) == n


async def test_state_refusals(tmp_path: Path, study: Study) -> None:
    from bot.services.enrolment import enroll

    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await linked_patient(bot, "RP-001", INJECTION, TZ)
        await enroll(bot.rt, "RP-002", INJECTION, "en", TZ, time(20, 0))
        n = await audit_count(bot)
        with pytest.raises(LifecycleError, match="RP-001 is not paused"):
            await lifecycle.resume(bot.rt, "RP-001", actor="cli")
        with pytest.raises(LifecycleError, match="RP-002 has not joined the diary yet"):
            await lifecycle.pause(bot.rt, "RP-002", actor="cli")
        assert await audit_count(bot) == n
        await lifecycle.pause(bot.rt, "rp-001", actor="cli")  # case-insensitive subject
        with pytest.raises(LifecycleError, match="RP-001 is already paused"):
            await lifecycle.pause(bot.rt, "RP-001", actor="cli")
        # An invited subject can be withdrawn (the code then no longer works).
        change = await lifecycle.withdraw(bot.rt, "RP-002", actor="cli")
        assert (change.old_status, change.notified) == ("invited", False)
