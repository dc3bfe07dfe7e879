"""Wording of a diary that stops or starts again (clinical decision 27, issue 10 review):
the resume notice names the weekly diary when a weekly one is open, in both languages."""

from __future__ import annotations

from datetime import date, timedelta

from bot.i18n import t
from tests.followup_support import add_staff
from tests.harness import Harness

WEEK_14 = date(2026, 11, 30) - timedelta(days=91)  # injected then: today is Day 91, weekly


async def test_resume_with_a_weekly_diary_open_says_this_weeks_diary(harness: Harness) -> None:
    h = harness
    await add_staff(h, 9001, "en")
    staff = h.player(9001, "en")
    en = await h.patient(501, "RP-001", lang="en", injection=WEEK_14)
    zh = await h.patient(502, "RP-002", lang="zh_Hans", injection=WEEK_14)
    await h.advance(hours=1)  # 20:00: the Day 91 weekly diary opens
    assert "Time for your weekly diary" in en.last_text
    for subject in ("RP-001", "RP-002"):
        await staff.send(f"/pause {subject}")
        await staff.send(f"/resume {subject}")
        assert f"{subject} is active again" in staff.last_text
    assert "Your diary starts again" in en.last_text
    assert "This week's diary is open now: send /diary to fill it in." in en.last_text
    assert "Today's diary" not in en.last_text
    zh_line = t("zh_Hans")("This week's diary is open now: send /diary to fill it in.")
    assert zh_line in zh.last_text and "本周" in zh_line
    assert t("zh_Hans")("Today's diary is open now: send /diary to fill it in.") not in zh.last_text
