"""A patient enrols and fills in a diary, end to end through the real stack."""

from __future__ import annotations

from datetime import timedelta

from tests.harness import Harness


async def test_enrol_and_first_diary_in_chinese(harness: Harness) -> None:
    h = harness
    p = await h.patient(501, "RP-001", lang="zh_Hans")
    assert "RP-001" in p.last.text
    assert "20:00" in p.last.text
    # 20:00 Shanghai on Nov 30 = Day -1 (baseline)
    await h.advance(hours=1)
    prompt = p.last
    assert prompt.buttons, p.texts()
    await p.tap(prompt.buttons[0][0][0])
    q1 = p.last
    assert q1.buttons
    await p.tap(q1.flat_buttons[0][0])  # bleeding: none
    rows = await h.rows("SELECT item, value FROM answers")
    assert [(r["item"], r["value"]) for r in rows] == [("BLEED", "0")]
    assert h.rt.now() - timedelta(hours=1) < h.rt.now()
