"""The follow-up in Telegram, end to end: staff /pause /resume /withdraw /reanchor /compliance,
the patient's /schedule, the kind "this day is closed" answer, and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.followup_support import add_staff, complete_diary
from tests.harness import Harness, Player


async def setup(h: Harness) -> tuple[Player, Player]:
    await add_staff(h, 9001, "en")
    patient = await h.patient(501, "RP-001", lang="en")
    return patient, h.player(9001, "en")


async def status(h: Harness, subject: str = "RP-001") -> str:
    return (await h.db_patient(subject)).status


async def actions(h: Harness) -> list[str]:
    return [r[0] for r in await h.rows("SELECT action FROM audit ORDER BY id")]


async def test_staff_pause_and_resume(harness: Harness) -> None:
    h = harness
    p, staff = await setup(h)
    await staff.send("/pause RP-001 on holiday")
    assert "RP-001 is paused" in staff.last_text
    assert "The patient has been told." in staff.last_text
    assert "paused your diary" in p.last_text
    assert await status(h) == "paused"
    entry = await h.rows("SELECT actor, reason FROM audit WHERE action = 'pause'")
    assert tuple(entry[0]) == ("staff:9001", "on holiday")

    await h.advance(hours=1)  # 20:00: no prompt while paused
    assert "Time for" not in p.last_text
    await p.send("/diary")
    assert "Your diary is paused for now" in p.last_text
    await p.send("/schedule")
    assert "Your diary is paused for now" in p.last_text

    await staff.send("/resume RP-001")
    assert "RP-001 is active again" in staff.last_text
    assert await status(h) == "active"
    texts = p.texts()
    assert any("Your diary starts again" in t for t in texts[-2:])
    # The Day -1 window is still open (until noon tomorrow): it is prompted now, once.
    assert sum("Time for today's diary" in t for t in texts) == 1


async def test_staff_withdraw_asks_for_confirmation(harness: Harness) -> None:
    h = harness
    p, staff = await setup(h)
    await staff.send("/withdraw RP-001 moved away")
    assert "This cannot be undone" in staff.last_text
    await staff.tap("Cancel")
    assert "Cancelled. Nothing was changed." in staff.last_text
    assert await status(h) == "active"

    await staff.send("/withdraw RP-001 moved away")
    confirm = staff.last_with_buttons()
    data = confirm.button_data("Withdraw RP-001")  # the message is edited when tapped
    await staff.tap("Withdraw RP-001", confirm)
    assert await status(h) == "withdrawn"
    assert "RP-001 is withdrawn" in (staff.messages[-1].text or "")
    assert "no longer take part" in p.last_text
    entry = await h.rows("SELECT actor, reason FROM audit WHERE action = 'withdraw'")
    assert tuple(entry[0]) == ("staff:9001", "moved away")
    n = len(await actions(h))
    await staff.press_data(data, confirm)  # a second tap
    assert "no longer valid" in staff.last_toast
    assert len(await actions(h)) == n

    await h.advance(hours=2)  # 21:00: the Day -1 window opened at 20:00 — nothing is sent
    assert "no longer take part" in p.last_text
    await p.send("/schedule")
    assert "You no longer receive diaries" in p.last_text


async def test_staff_reanchor(harness: Harness) -> None:
    h = harness
    p, staff = await setup(h)
    await staff.send("/reanchor RP-001 2026-12-10 injection postponed")
    assert "Move day 0 of RP-001 from 2026-12-01 to 2026-12-10" in staff.last_text
    await staff.tap("Move day 0")
    assert (await h.db_patient("RP-001")).injection_date.isoformat() == "2026-12-10"
    assert "Day 0 of RP-001 moved from 2026-12-01 to 2026-12-10" in staff.last_text
    assert "day 0) is now 10 December 2026" in p.last_text
    entry = await h.rows("SELECT old_value, reason FROM audit WHERE action = 'reanchor'")
    assert tuple(entry[0]) == ("2026-12-01", "injection postponed")
    # Tonight (30 Nov) is now Day -10: no diary; baseline starts on 3 Dec.
    first = await h.rows(
        "SELECT key, local_date FROM occurrences WHERE opens_at > ? ORDER BY opens_at LIMIT 1",
        ("2026-11-30T11:00:00.000000Z",),
    )
    assert tuple(first[0]) == ("baseline:-7", "2026-12-03")


async def test_staff_commands_refuse_bad_input_and_other_people(harness: Harness) -> None:
    h = harness
    p, staff = await setup(h)
    occurrences = [tuple(r) for r in await h.rows("SELECT * FROM occurrences ORDER BY id")]

    await p.send("/pause RP-001")  # a patient is not staff
    assert p.last.text == "This is not available."
    await h.player(777, "en").send("/withdraw RP-001")  # nor is a stranger
    assert h.player(777).last.text == "This is not available."
    # An admin runs the system and may look, but pausing or withdrawing is a study decision.
    await add_staff(h, 9005, "en", role="admin")
    admin = h.player(9005, "en")
    await admin.send("/withdraw RP-001")
    assert admin.last.text == "Your role (admin) cannot do this."
    await admin.send("/compliance RP-001")
    assert "RP-001" in admin.last.text
    unauthorized = await h.rows("SELECT entity FROM audit WHERE action = 'unauthorized'")
    assert [r[0] for r in unauthorized] == ["/pause", "/withdraw"]
    # the stranger's attempt is counted for the hour's summary, not audited on its own
    counted = await h.rows("SELECT user_id, action, count FROM stranger_activity")
    assert [tuple(r) for r in counted] == [(777, "unauthorized:/withdraw", 1)]

    cases = [
        ("/pause", "Please write it like this: /pause RP-001 [reason]"),
        ("/pause RP-404", "There is no patient RP-404."),
        ("/resume RP-001", "RP-001 is not paused."),
        ("/withdraw", "Please write it like this: /withdraw RP-001 [reason]"),
        ("/reanchor RP-001", "Please write it like this: /reanchor RP-001 2026-12-10 [reason]"),
        ("/reanchor RP-001 10/12/2026", "10/12/2026 is not a date. Please write it as YYYY-MM-DD."),
        ("/reanchor RP-001 2026-12-01", "Day 0 of RP-001 is already 2026-12-01."),
        ("/reanchor RP-001 2020-01-01", "would already be over"),
        ("/compliance RP-404", "There is no patient RP-404."),
    ]
    # Three staff members take turns, so Telegram's per-chat pacing does not slow the test.
    team = [staff]
    for extra in (9003, 9004):
        await add_staff(h, extra, "en")
        team.append(h.player(extra, "en"))
    for i, (command, answer) in enumerate(cases):
        member = team[i % len(team)]
        await member.send(command)
        assert answer in member.last_text, (command, member.last.text)
    assert await status(h) == "active"
    assert [tuple(r) for r in await h.rows("SELECT * FROM occurrences ORDER BY id")] == occurrences
    changes = {"pause", "resume", "withdraw", "reanchor"}
    assert not changes & set(await actions(h))

    # A confirmation belongs to the staff member who asked for it.
    await add_staff(h, 9002, "en")
    await staff.send("/withdraw RP-001")
    confirm = staff.last_with_buttons()
    other = h.player(9002, "en")
    await other.send("/compliance")
    await other.press_data(confirm.button_data("Withdraw"), other.last)
    assert "no longer valid" in other.last_toast
    assert await status(h) == "active"


async def test_patient_schedule_shows_next_diary_phase_visit_and_streak(harness: Harness) -> None:
    h = harness
    p, _staff = await setup(h)
    await h.advance(hours=1)  # 20:00, Day -1 prompt
    occ = await h.rows("SELECT id FROM occurrences WHERE key = 'baseline:-1'")
    await complete_diary(h.bot, "RP-001", occ[0][0])
    await p.send("/schedule")
    text = p.last_text
    assert "Today is study day -1: Before-treatment diary." in text
    assert "Your next diary opens on 1 December 2026 at 20:00." in text
    assert "Next visit: Month 1 visit on 31 December 2026" in text
    assert "from 24 December 2026 to 7 January 2027" in text
    assert "Your recent diaries: ✅" in text

    await h.advance(hours=1)  # 21:00, nothing open
    await h.set_time(datetime(2026, 12, 1, 12, 30, tzinfo=UTC))  # Day 0, 20:30: open now
    await p.send("/schedule")
    assert "Your diary is open now, until 12:00 on 2 December 2026" in p.last_text
    assert "Today is study day 0: Daily diary." in p.last_text


async def test_a_closed_day_is_explained_kindly(harness: Harness) -> None:
    h = harness
    p, _staff = await setup(h)
    await h.advance(hours=1)  # 20:00 Day -1 prompt
    prompt = p.last_with_buttons()
    await h.set_time(datetime(2026, 12, 1, 5, 0, tzinfo=UTC))  # 13:00 next day: closed at noon
    row = await h.rows("SELECT status FROM occurrences WHERE key = 'baseline:-1'")
    assert row[0][0] == "missed"
    await p.tap("Start", prompt)
    assert "This diary is closed now" in p.last_toast
    assert "Your next diary opens on 1 December 2026 at 20:00." in p.last_toast
    await p.send("/diary")
    assert "This diary is closed now" in p.last_text
    assert "Your next diary opens on 1 December 2026 at 20:00." in p.last_text
    await p.send("/schedule")
    assert "Your last diary was missed. That's all right" in p.last_text


async def test_staff_compliance(harness: Harness) -> None:
    h = harness
    p, staff = await setup(h)
    await h.advance(hours=1)
    occ = await h.rows("SELECT id FROM occurrences WHERE key = 'baseline:-1'")
    await complete_diary(h.bot, "RP-001", occ[0][0])
    await h.set_time(datetime(2026, 12, 2, 5, 0, tzinfo=UTC))  # Day 0 missed by now
    await staff.send("/compliance")
    assert "RP-001: 7 days 1/2 (50%) · 30 days 1/2 (50%) · overall 1/2 (50%)" in staff.last_text
    await staff.send("/compliance rp-001")
    text = staff.last_text
    assert "Compliance of RP-001" in text
    assert "Before-treatment diary: 1/1 (100%)" in text
    assert "Daily diary: 0/1 (0%)" in text
    assert "Missed in a row now: 1" in text
    await staff.send("/schedule")
    assert "/schedule is the patients' view" in staff.last_text
    await p.send("/compliance")
    assert p.last.text == "This is not available."
