"""The clinical content of the diary, end to end through the real bot (issue 10).

Fever is asked after Day 14 and in weekly diaries, temperatures are taken as typed (never
rounded), the injection's complications and dizziness after visible blood raise their alerts,
and a re-anchor relabels the stored diaries.
"""

from __future__ import annotations

from datetime import date, timedelta

from bot.escalation.views import safety_text
from bot.followup import lifecycle
from bot.i18n import t
from tests.diary_helpers import QUIET
from tests.escalation_support import EN_COORD, alert_messages
from tests.harness import Harness, Player, fill_diary

EN = t("en")
TODAY = date(2026, 11, 30)  # the harness starts at 19:00 Shanghai on this day


async def on_day(h: Harness, day: int, lang: str = "en") -> Player:
    """A patient whose diary at 20:00 today is study day `day`; the prompt has arrived."""
    p = await h.patient(501, "RP-001", lang=lang, injection=TODAY - timedelta(days=day))
    await h.advance(hours=1)
    return p


async def asked(h: Harness, p: Player) -> str | None:
    """The item the open diary session asks now (None: the review screen)."""
    rows = await h.rows(
        "SELECT s.item FROM diary_sessions s JOIN patients p ON p.id = s.patient_id"
        " WHERE p.user_id = ?",
        (p.user_id,),
    )
    assert rows, "no diary is open"
    return rows[0]["item"]


async def answer(h: Harness, p: Player, code: str, value: str) -> None:
    """Answer the question asked now, which must be `code`."""
    assert await asked(h, p) == code
    occ = (await h.rows("SELECT occurrence_id FROM diary_sessions"))[0]["occurrence_id"]
    item = h.study.item(code)
    if item.kind == "multi":
        for option in value.split(","):
            await p.press_data(f"d:t:{occ}:{code}:{option}", p.last_with_buttons())
        await p.press_data(f"d:n:{occ}:{code}", p.last_with_buttons())
    elif item.kind in ("number", "text"):
        await p.send(value)
    else:
        await p.press_data(f"d:a:{occ}:{code}:{value}", p.last_with_buttons())


async def until(h: Harness, p: Player, stop: str | None, answers: dict[str, str]) -> None:
    """Answer from `answers` until the diary asks `stop`."""
    for _ in range(30):
        code = await asked(h, p)
        if code == stop:
            return
        assert code is not None and code in answers, code
        await answer(h, p, code, answers[code])
    raise AssertionError(f"{stop} was never asked")


async def alerts(h: Harness) -> list[tuple[str, str, int]]:
    rows = await h.rows("SELECT rule, level, study_day FROM alerts ORDER BY id")
    return [(r["rule"], r["level"], r["study_day"]) for r in rows]


async def stored(h: Harness, item: str) -> list[str]:
    return [r["value"] for r in await h.rows("SELECT value FROM answers WHERE item = ?", (item,))]


async def test_fever_on_day_40_full_width_temperature_and_no_rounding(harness: Harness) -> None:
    h = harness
    p = await on_day(h, 40)
    await p.send("/diary")
    await until(h, p, "FEVER", QUIET)
    assert "In the last 24 hours, did you have a fever" in p.last_text
    await answer(h, p, "FEVER", "Y")
    assert await asked(h, p) == "TEMP"
    assert "Type a number from 35.0 to 43.0." in p.last_text
    # 37.95 is not rounded up to 38.0: refused, with a clear message, and nothing is stored.
    await p.send("37.95")
    assert p.last.text == EN(
        "Please type the number with at most one digit after the decimal point, "
        "for example {example}.",
        example="38.5",
    )
    assert await stored(h, "TEMP") == []
    assert await asked(h, p) == "TEMP"
    await p.send("45")
    assert p.last.text == "Please give a number from 35.0 to 43.0."
    # Full-width digits, as a Chinese keyboard types them: accepted, stored as typed.
    await p.send("３８．５")
    assert await stored(h, "TEMP") == ["38.5"]
    await until(h, p, None, {**QUIET, "COMPL": "NONE"})
    await p.press_data(f"d:x:{_occ(p)}", p.last_with_buttons())
    assert await alerts(h) == []  # 38.5 after Day 14: below the 39.0 rule


async def test_weekly_diary_asks_fever_and_the_efficacy_items(harness: Harness) -> None:
    h = harness
    p = await on_day(h, 91)  # Week 14: the first weekly diary
    occ = (await h.rows("SELECT form, study_day FROM occurrences WHERE status = 'prompted'"))[0]
    assert (occ["form"], occ["study_day"]) == ("weekly", 91)
    await p.send("/diary")
    await answer(h, p, "BLEED", "2")
    await answer(h, p, "BLEED_FAINT", "N")
    assert "On how many of the last 7 days did you see any blood?" in p.last_text
    await answer(h, p, "BLEED_DAYS", "3")
    assert "mucus" in p.last_text
    await until(h, p, "BM_USUAL", QUIET)
    await answer(h, p, "BM_USUAL", "4")
    await until(h, p, "FEVER", QUIET)
    assert "In the last 7 days, did you have a fever" in p.last_text
    await answer(h, p, "FEVER", "Y")
    assert "highest temperature in the last 7 days" in p.last_text
    await p.send("39,0℃")
    await until(h, p, "EVENTS", QUIET)
    await answer(h, p, "EVENTS", "EN_SUCR,IRON,APC")
    await until(h, p, None, QUIET)
    await p.press_data(f"d:x:{_occ(p)}", p.last_with_buttons())
    got = {item: await stored(h, item) for item in ("BLEED_DAYS", "BM_USUAL", "TEMP", "EVENTS")}
    assert got == {
        "BLEED_DAYS": ["3"],
        "BM_USUAL": ["4"],
        "TEMP": ["39.0"],
        "EVENTS": ["EN_SUCR,IRON,APC"],
    }
    found = await alerts(h)
    assert ("FEVER_HIGH", "urgent", 91) in found
    assert ("NEW_MEDICINE", "review", 91) in found
    assert not any(rule == "FEVER_EARLY" for rule, _, _ in found)
    # The safety text of the study file reached the patient.
    assert safety_text(EN, h.study) in "\n".join(p.texts())


async def test_complication_of_the_injection_is_urgent(escalation_team: Harness) -> None:
    h = escalation_team
    p = await on_day(h, 2, lang="zh_Hans")
    await fill_diary(p, {**QUIET, "COMPL": "BELLY,PUS"})
    # One card for the diary's urgent findings, with both reasons on it.
    assert await alerts(h) == [("COMPL_BELLY", "urgent", 2)]
    cards = alert_messages(h, EN_COORD)
    assert cards
    card = cards[-1].text or ""
    assert "New or severe belly pain, or a swollen belly" in card
    assert "Pus or foul discharge from the back passage" in card
    assert await stored(h, "COMPL") == ["BELLY,PUS"]
    zh = safety_text(t("zh_Hans"), h.study)
    assert "急救电话120" in zh and zh in "\n".join(p.texts())


async def test_none_of_these_clears_the_complications(harness: Harness) -> None:
    h = harness
    p = await on_day(h, 0)
    await p.send("/diary")
    await until(h, p, "COMPL", QUIET)
    occ = _occ(p)
    for option in ("CHILLS", "NONE"):
        await p.press_data(f"d:t:{occ}:COMPL:{option}", p.last_with_buttons())
    await p.press_data(f"d:n:{occ}:COMPL", p.last_with_buttons())
    assert await stored(h, "COMPL") == ["NONE"]


async def test_dizziness_is_asked_after_blood_in_the_stool(harness: Harness) -> None:
    h = harness
    p = await on_day(h, 3)
    await p.send("/diary")
    await answer(h, p, "BLEED", "2")
    assert await asked(h, p) == "BLEED_FAINT"
    assert "Did you feel dizzy or nearly faint, or did you faint?" in p.last_text
    await answer(h, p, "BLEED_FAINT", "Y")
    await until(h, p, None, QUIET)
    await p.press_data(f"d:x:{_occ(p)}", p.last_with_buttons())
    assert ("BLEED_FAINT", "urgent", 3) in await alerts(h)


async def test_streaks_on_the_paper_do_not_ask_dizziness(harness: Harness) -> None:
    h = harness
    p = await on_day(h, 3)
    await p.send("/diary")
    await answer(h, p, "BLEED", "1")
    assert await asked(h, p) == "MUCUS"


async def test_reanchor_relabels_the_stored_diaries(harness: Harness) -> None:
    h = harness
    # Enrolled for an injection on Dec 3: tonight's diary is a baseline diary, Day -3.
    p = await h.patient(501, "RP-001", lang="en", injection=date(2026, 12, 3))
    await h.advance(hours=1)
    await fill_diary(p, dict(QUIET))
    done = await h.rows("SELECT key, study_day, phase FROM occurrences WHERE status='completed'")
    assert [tuple(r) for r in done] == [("baseline:-3", -3, "baseline")]
    # The injection really happened on Nov 29: tonight's diary was after it, so it is Day 1.
    await lifecycle.reanchor_patient(h.rt, "RP-001", date(2026, 11, 29), actor="cli")
    done = await h.rows("SELECT key, study_day, phase FROM occurrences WHERE status='completed'")
    assert [tuple(r) for r in done] == [("baseline:-3", 1, "baseline")]  # original key kept
    relabelled = await h.rows("SELECT new_value FROM audit WHERE action = 'reanchor'")
    assert '"relabelled"' in relabelled[0]["new_value"]
    # Every stored diary agrees with the new Day 0.
    for row in await h.rows("SELECT study_day, local_date FROM occurrences"):
        assert row["study_day"] == (date.fromisoformat(row["local_date"]) - date(2026, 11, 29)).days


def _occ(p: Player) -> str:
    for _, data in p.last_with_buttons().flat_buttons:
        if data and data.startswith("d:"):
            return data.split(":")[2]
    raise AssertionError("no diary buttons")


async def test_median_baseline_decides_and_fallbacks_stand_down(harness: Harness) -> None:
    """Three baseline diaries make a baseline (median 5 a day): 10 bowel movements on Day 0 are
    +5 (review), not the no-baseline urgent fallback, even while the diary is being answered."""
    h = harness
    p = await h.patient(501, "RP-001", lang="en", injection=date(2026, 12, 3))
    await h.advance(hours=1)  # 20:00 on Nov 30: Day -3
    for bm in ("5", "4", "9"):  # median 5 (a mean would be 6)
        await fill_diary(p, {**QUIET, "BM": bm})
        await h.advance(days=1)  # the next evening; after the third: Day 0 (Dec 3), 20:00
    await fill_diary(p, {**QUIET, "BM": "10"}, submit=False)
    assert await alerts(h) == []  # nothing urgent while it is answered
    await p.press_data(f"d:x:{_occ(p)}", p.last_with_buttons())
    assert await alerts(h) == [("BM_REVIEW", "review", 0)]


async def test_without_baseline_ten_bowel_movements_are_urgent_at_once(harness: Harness) -> None:
    h = harness
    p = await on_day(h, 5)  # enrolled after the injection: no baseline diaries
    await fill_diary(p, {**QUIET, "BM": "10"}, submit=False)
    assert await alerts(h) == [("BM_NOBASE_URGENT", "urgent", 5)]  # before Submit
