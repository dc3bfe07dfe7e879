"""A patient enrols and fills in a diary, end to end through the real stack."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from conversations import diary
from tests.harness import Harness


async def test_enrol_and_first_diary_in_chinese(harness: Harness) -> None:
    h = harness
    p = await h.patient(501, "RP-001", lang="zh_Hans")
    assert "RP-001" in p.last_text
    assert "20:00" in p.last_text
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


async def test_an_answer_and_its_reply_are_one_commit(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next question is queued in the answer's own transaction: if queuing it fails (as a
    crash between the two would), the answer is not stored either, and the patient's tap
    can simply be made again."""
    h = harness
    p = await h.patient(501, "RP-001", lang="en")
    await h.advance(hours=1)  # the Day -1 prompt
    await p.tap(p.last.buttons[0][0][0])  # Start: the first question
    question = p.last
    asked = question.text  # the message object is edited in place later
    real = diary.enqueue_edit
    calls = [0]

    async def failing_once(*args: Any, **kwargs: Any) -> int:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("the process died here")
        return await real(*args, **kwargs)

    monkeypatch.setattr(diary, "enqueue_edit", failing_once)
    await p.tap(question.flat_buttons[0][0])  # bleeding: none — the reply fails
    assert await h.rows("SELECT item FROM answers") == []
    assert p.last.text == asked  # still the same question
    await p.tap(question.flat_buttons[0][0])  # the same tap again
    assert [tuple(r) for r in await h.rows("SELECT item, value FROM answers")] == [("BLEED", "0")]
    assert p.last.text != asked and "Question 2 of" in p.last_text  # the next question
