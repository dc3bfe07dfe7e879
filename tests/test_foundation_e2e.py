"""Foundation, end to end: enrolment, the daily diary, review, settings, help."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bot.i18n import t
from conversations import diary_view
from tests.diary_helpers import QUIET, answer_until_review
from tests.harness import Harness

EN = t("en")
ZH = t("zh_Hans")


async def test_link_by_deep_link_shows_welcome_in_enrolment_language(harness: Harness) -> None:
    p = await harness.patient(501, "RP-001", lang="en")
    text = p.last.text or ""
    assert "RP-001" in text and "20:00" in text
    assert "/diary" in text and "/settings" in text and "/help" in text
    patient = await harness.db_patient("RP-001")
    assert patient.status == "active" and patient.chat_id == 501 and patient.user_id == 501


async def test_start_then_type_code(harness: Harness) -> None:
    code = await harness.enroll("RP-003", lang="zh_Hans")
    p = harness.player(503)
    await p.send("/start")
    assert p.last.text == ZH(
        "Welcome. This is the symptom diary of a clinical study. Please type the enrolment code "
        "your study team gave you."
    )
    await p.send(code.lower())  # case and spacing do not matter
    assert "RP-003" in (p.last.text or "")


async def test_code_without_language_asks_for_one(harness: Harness) -> None:
    code = await harness.enroll("RP-004", lang=None)
    p = harness.player(504, language_code="en")
    await p.send(f"/start {code}")
    assert "中文" in str(p.last.buttons) and "English" in str(p.last.buttons)
    await p.tap("English")
    assert (await harness.db_patient("RP-004")).lang == "en"
    assert "RP-004" in (p.last.text or "")


async def test_daily_diary_zh_with_review_change_and_submit(harness: Harness) -> None:
    h = harness
    p = await h.patient(501, "RP-001", lang="zh_Hans")
    await h.advance(hours=1)  # 20:00 in Shanghai: Day -1 (baseline) opens
    prompt = p.last
    assert ZH("Time for today's diary. It takes about a minute.") in (prompt.text or "")
    await p.tap(ZH("Start"))
    await answer_until_review(p, dict(QUIET))
    review = p.last.text or ""
    assert ZH("Please check your answers:") in review
    # Day -1: the fever and complication questions (from Day 0) are not asked.
    assert ZH("Fever of 38.0 °C or more") not in review
    # Change bleeding to "dripping blood or clots": the dizziness follow-up now applies.
    await p.tap(ZH("Rectal bleeding"))
    occ = (await h.rows("SELECT id FROM occurrences WHERE status != 'scheduled'"))[0]["id"]
    await p.press_data(f"d:a:{occ}:BLEED:3", p.last_with_buttons())
    assert ZH("Did you feel dizzy or nearly faint, or did you faint?") in (p.last.text or "")
    await p.press_data(f"d:a:{occ}:BLEED_FAINT:N", p.last_with_buttons())
    assert ZH("Dizzy or faint with bleeding") in (p.last.text or "")
    # and back to "none": the follow-up is dropped on submit
    await p.tap(ZH("Rectal bleeding"))
    await p.press_data(f"d:a:{occ}:BLEED:0", p.last_with_buttons())
    await p.tap(ZH("Submit"))
    rows = await h.rows(
        "SELECT a.item, a.value, a.answered_at, a.submitted_at, o.status FROM answers a"
        " JOIN occurrences o ON o.id = a.occurrence_id ORDER BY a.id"
    )
    stored = {r["item"]: r["value"] for r in rows}
    not_asked = ("FEVER", "COMPL", "BM_USUAL")  # from Day 0; weekly only
    assert stored == {k: v for k, v in QUIET.items() if k not in not_asked}
    assert all(r["answered_at"] and r["submitted_at"] and r["status"] == "completed" for r in rows)
    assert ZH("Thank you! Your diary has been saved.") in (p.last.text or "")
    assert "2026年12月1日" in (p.last.text or "")  # next diary: Day 0, Babel date
    # Reopening a submitted diary says it is done.
    await p.send("/diary")
    assert ZH("This diary is already done. Thank you!") in (p.last.text or "")


async def test_fever_item_only_on_days_0_to_14_and_temperature_typed(harness: Harness) -> None:
    h = harness
    await h.set_time(datetime(2026, 12, 1, 12, 30, tzinfo=UTC))  # Day 0, 20:30 Shanghai
    p = await h.patient(505, "RP-005", lang="en")
    await p.send("/diary")
    answers = dict(QUIET, FEVER="Y", TEMP="37,5")
    await answer_until_review(p, answers)
    review = p.last.text or ""
    assert "Highest temperature (°C): 37.5 °C" in review
    stored = await h.rows("SELECT value FROM answers WHERE item = 'TEMP'")
    assert [r["value"] for r in stored] == ["37.5"]


async def test_bad_inputs_change_nothing(harness: Harness) -> None:
    h = harness
    await h.set_time(datetime(2026, 12, 1, 12, 30, tzinfo=UTC))  # Day 0
    p = await h.patient(506, "RP-006", lang="en")
    await p.send("/diary")
    # text where a button is expected
    await p.send("none")
    assert p.last.text == EN("Please tap one of the buttons above to answer.")
    assert await h.rows("SELECT * FROM answers") == []
    occ = (await h.rows("SELECT id FROM occurrences WHERE study_day = 0"))[0]["id"]
    for item, code in (("BLEED", "0"), ("MUCUS", "0"), ("URGENCY", "0"), ("LEAK", "0")):
        await p.press_data(f"d:a:{occ}:{item}:{code}", p.last_with_buttons())
    before = len(await h.rows("SELECT * FROM answers"))
    for bad, expected in (
        ("11", "Please give a number from 0 to 10."),
        ("-1", "Please give a number from 0 to 10."),
        ("seven", "Please type a number, for example 3."),
        ("七", "Please type a number, for example 3."),
        ("2.5", "Please type a whole number from 0 to 10."),
    ):
        await p.send(bad)
        assert p.last.text == expected, (bad, p.last.text)
    assert len(await h.rows("SELECT * FROM answers")) == before
    # a forged button value out of range
    await p.press_data(f"d:a:{occ}:PAIN:11", p.last_with_buttons())
    assert p.last_toast == EN(
        "That button is not valid. Please use the buttons of the current question."
    )
    await p.send("7")  # typed numbers are fine for the pain scale
    assert (await h.rows("SELECT value FROM answers WHERE item='PAIN'"))[0]["value"] == "7"
    for item, code in (("BM", "3"), ("TENESMUS", "0"), ("FEVER", "Y")):
        await p.press_data(f"d:a:{occ}:{item}:{code}", p.last_with_buttons())
    for bad, expected in (
        ("45", "Please give a number from 35.0 to 43.0."),
        ("hot", "Please type a number, for example 38.5."),
        ("37.95", EN(diary_view.ERRORS["one_decimal"], example="38.5")),  # never rounded
    ):
        await p.send(bad)
        assert p.last.text == expected, (bad, p.last.text)
    assert await h.rows("SELECT * FROM answers WHERE item='TEMP'") == []
    await p.send("38,2")
    await p.press_data(f"d:t:{occ}:COMPL:NONE", p.last_with_buttons())
    await p.press_data(f"d:n:{occ}:COMPL", p.last_with_buttons())
    await p.press_data(f"d:t:{occ}:EVENTS:MED", p.last_with_buttons())
    # "None of these" together with another: exclusive
    await p.press_data(f"d:t:{occ}:EVENTS:NONE", p.last_with_buttons())
    assert (await h.rows("SELECT value FROM answers WHERE item='EVENTS'"))[0]["value"] == "NONE"
    await p.press_data(f"d:n:{occ}:EVENTS", p.last_with_buttons())
    await p.press_data(f"d:a:{occ}:OTHER:Y", p.last_with_buttons())
    await p.send("x" * 5000)
    assert p.last.text == EN("That is too long: please keep it under 1000 characters.")
    assert await h.rows("SELECT * FROM answers WHERE item='OTHER_TEXT'") == []
    await p.send("Mild headache since yesterday")
    assert EN("Please check your answers:") in (p.last.text or "")


async def test_yesterdays_button_and_other_patients_diary(harness: Harness) -> None:
    h = harness
    p = await h.patient(507, "RP-007", lang="en")
    q = await h.patient(508, "RP-008", lang="en")
    await h.advance(hours=1)  # Day -1 prompts
    await p.tap("Start")
    old_question = p.last_with_buttons()
    occ_p = (
        await h.rows(
            "SELECT o.id FROM occurrences o JOIN patients p ON p.id = o.patient_id"
            " WHERE p.subject = 'RP-007' AND o.study_day = -1"
        )
    )[0]["id"]
    # RP-008 forges a button naming RP-007's diary
    await q.press_data(f"d:a:{occ_p}:BLEED:3", q.last)
    assert q.last_toast == EN("This is not available.")
    assert await h.rows("SELECT * FROM answers") == []
    # next day, after noon: yesterday's window has closed
    await h.advance(hours=17)
    await p.press_data(old_question.button_data("None"), old_question)
    assert EN("This diary is closed now") in p.last_toast
    assert await h.rows("SELECT * FROM answers") == []
    status = await h.rows("SELECT status FROM occurrences WHERE id = ?", (occ_p,))
    assert status[0]["status"] == "missed"
    # garbage callback data
    await p.press_data("zz:!!:<script>", p.last)
    assert p.last_toast == EN("This is not available.")


async def test_strangers_codes_and_lockout(harness: Harness) -> None:
    h = harness
    s = h.player(900, language_code="en")
    await s.send("hello")
    assert "enrolment code" in (s.last.text or "")
    await s.send("/diary")
    assert "enrolment code" in (s.last.text or "")
    await s.send("/start ABCDEFGHJK")
    assert s.last.text == EN("This code is not right. Please check it and try again.")
    code = await h.enroll("RP-010", lang="en")
    other = h.player(901, language_code="en")
    await other.send(f"/start {code}")
    await s.send(f"/start {code}")  # used
    assert s.last.text == EN(
        "This code has already been used. Please ask your study team for a new one."
    )
    for _ in range(3):
        await s.send("/start ZZZZZZZZZZ")
    assert "Too many wrong codes" in (s.last.text or "")
    code2 = await h.enroll("RP-011", lang="en")
    await s.send(f"/start {code2}")  # even a right code waits now
    assert "Too many wrong codes" in (s.last.text or "")
    assert (await h.db_patient("RP-011")).chat_id is None
    await h.advance(minutes=16)
    await s.send(f"/start {code2}")
    assert (await h.db_patient("RP-011")).chat_id == 900


async def test_expired_code(harness: Harness) -> None:
    h = harness
    code = await h.enroll("RP-012", lang="en")
    await h.advance(days=15)
    p = h.player(912, language_code="en")
    await p.send(f"/start {code}")
    assert p.last.text == EN("This code has expired. Please ask your study team for a new one.")
    assert (await h.db_patient("RP-012")).status == "invited"


async def test_group_chat_and_edited_message(harness: Harness) -> None:
    h = harness
    p = await h.patient(513, "RP-013", lang="en")
    h.api.send_text(513, "/diary", chat_id=-100555, chat_type="group", language_code="en")
    await h.settle()
    assert h.api.messages(-100555)[-1].text == EN(
        "This bot works only in a private chat. Please write to me directly."
    )
    await p.send("/diary")
    sent = h.api.send_text(513, "5", language_code="en")
    await h.settle()
    h.api.edit_text(513, sent["message_id"], "9")
    await h.settle()
    assert p.last.text == EN(
        "I don't read edited messages. Please send your answer as a new message."
    )
    assert await h.rows("SELECT * FROM answers") == []


async def test_bad_input_is_answered_in_the_language_the_patient_chose(harness: Harness) -> None:
    """Enrolled in Chinese, Telegram set to English: every refusal is in Chinese, and nothing
    is stored (the patient's explicit choice wins over Telegram's language)."""
    h = harness
    await h.set_time(datetime(2026, 12, 1, 12, 30, tzinfo=UTC))  # Day 0
    await h.patient(516, "RP-016", lang="zh_Hans")
    p = h.player(516, "en")
    await p.send("/diary")
    await p.send("没有")  # text where a button is expected
    assert p.last.text == ZH("Please tap one of the buttons above to answer.")
    occ = (await h.rows("SELECT id FROM occurrences WHERE study_day = 0"))[0]["id"]
    for item, code in (("BLEED", "0"), ("MUCUS", "0"), ("URGENCY", "0"), ("LEAK", "0")):
        await p.press_data(f"d:a:{occ}:{item}:{code}", p.last_with_buttons())
    before = [tuple(r) for r in await h.rows("SELECT item, value FROM answers")]
    await p.send("十一")
    assert p.last.text == ZH("Please type a number, for example {example}.", example="3")
    await p.send("11")
    assert p.last.text == ZH("Please give a number from {min} to {max}.", min="0", max="10")
    await p.press_data(f"d:a:{occ}:PAIN:11", p.last_with_buttons())  # forged
    assert p.last_toast == ZH(
        "That button is not valid. Please use the buttons of the current question."
    )
    sent = h.api.send_text(516, "很痛", language_code="en")  # refused: not a number
    await h.settle()
    h.api.edit_text(516, sent["message_id"], "9")  # an edit is not read either
    await h.settle()
    assert p.last.text == ZH(
        "I don't read edited messages. Please send your answer as a new message."
    )
    assert [tuple(r) for r in await h.rows("SELECT item, value FROM answers")] == before


async def test_settings_language_time_and_timezone(harness: Harness) -> None:
    h = harness
    p = await h.patient(514, "RP-014", lang="zh_Hans")
    await p.send("/settings")
    await p.tap(ZH("Language"))
    await p.tap("English")
    assert (await h.db_patient("RP-014")).lang == "en"
    assert EN("Saved.") in (p.last.text or "")
    await p.tap(EN("Reminder time"))
    await p.send("25:00")
    assert p.last.text == EN("Please type the time as hours:minutes, like 20:30.")
    await p.send("21:30")
    patient = await h.db_patient("RP-014")
    assert patient.prompt_time.strftime("%H:%M") == "21:30"
    opens = await h.rows(
        "SELECT opens_at FROM occurrences WHERE patient_id = ? AND study_day = 0", (patient.id,)
    )
    assert opens[0]["opens_at"].startswith("2026-12-01T13:30")  # 21:30 Shanghai
    await p.tap(EN("Time zone"))
    await p.send("Mars/Olympus")
    assert "I don't know that time zone" in (p.last.text or "")
    await p.send("Europe/London")
    patient = await h.db_patient("RP-014")
    assert patient.timezone == "Europe/London"
    opens = await h.rows(
        "SELECT opens_at FROM occurrences WHERE patient_id = ? AND study_day = 0", (patient.id,)
    )
    assert opens[0]["opens_at"].startswith("2026-12-01T21:30")  # 21:30 London (UTC+0)


async def test_help_shows_contact_phone(harness: Harness) -> None:
    p = await harness.patient(515, "RP-015", lang="zh_Hans")
    await p.send("/help")
    assert harness.study.contact_phone in (p.last.text or "")
    assert ZH("Your answers go to your study team. The bot does not give medical advice.") in (
        p.last.text or ""
    )


async def test_restart_neither_loses_nor_repeats_a_prompt(harness: Harness) -> None:
    h = harness
    p = await h.patient(516, "RP-016", lang="en")
    await h.advance(hours=1)
    prompts = [m for m in p.messages if m.buttons and "Start" in str(m.buttons)]
    assert len(prompts) == 1
    for _ in range(3):
        await h.bot.scheduler.tick()
        await h.settle()
    prompts = [m for m in p.messages if m.buttons and "Start" in str(m.buttons)]
    assert len(prompts) == 1
    rows = await h.rows("SELECT local_date FROM occurrences WHERE status = 'prompted'")
    assert [r["local_date"] for r in rows] == [date(2026, 11, 30).isoformat()]


async def test_withdrawn_patient_is_told_there_are_no_more_diaries(harness: Harness) -> None:
    from bot.followup.lifecycle import withdraw

    h = harness
    p = await h.patient(517, "RP-017", lang="en")
    await withdraw(h.rt, "RP-017", actor="test", reason="patient's wish")
    await h.settle()
    await p.send("/diary")
    assert p.last.text == EN("There are no more diaries planned for you.")
