"""A new urgent finding on a diary's open card notifies (issue 10, review of main): an edit of a
Telegram message does not notify, so a finding that joins a card already sent comes with a new
copy of the card saying what was added; a report that adds nothing new is only an edit.
"""

from __future__ import annotations

import json

import pytest

from tests.escalation_support import (
    EN_COORD,
    GROUP,
    INVESTIGATOR,
    ZH_COORD,
    actions,
    alert_messages,
    day0_patient,
)
from tests.harness import Harness
from tests.test_clinical_flow_e2e import QUIET, answer, answer_all, asked

BELLY = "New or severe belly pain, or a swollen belly"


@pytest.fixture
def h(escalation_team: Harness) -> Harness:
    return escalation_team


async def test_a_new_urgent_finding_on_the_open_card_of_the_same_diary_notifies(
    h: Harness,
) -> None:
    p = await day0_patient(h, lang="en")
    await p.send("/diary")
    await answer(h, p, "BLEED", "3")  # clots at 20:00: the card goes out
    [first] = alert_messages(h, EN_COORD)
    assert BELLY not in (first.text or "")
    one_each = {c: len(alert_messages(h, c)) for c in (ZH_COORD, GROUP)}
    assert one_each == {ZH_COORD: 1, GROUP: 1}

    await h.advance(minutes=2)
    await answer(h, p, "BLEED_FAINT", "N")
    await answer_all(h, p, {k: v for k, v in QUIET.items() if k != "COMPL"})
    occ, item = await asked(h, p)
    assert item == "COMPL"
    # Severe belly pain ticked at 20:02 in the same diary: a new message, naming it.
    await p.press_data(f"d:t:{occ}:COMPL:BELLY", p.last_with_buttons())
    cards = alert_messages(h, EN_COORD)
    assert len(cards) == 2, [c.text for c in cards]
    first_line = (cards[-1].text or "").splitlines()[0]
    assert first_line == f"➕ New on this alert: {BELLY}", cards[-1].text
    assert "Dripping blood or clots" in (cards[-1].text or "")  # the whole card
    assert "Acknowledge" in [label for label, _ in cards[-1].flat_buttons]
    # The same recipients as the first delivery (not yet re-sent: no investigator).
    assert len(alert_messages(h, ZH_COORD)) == 2 and len(alert_messages(h, GROUP)) == 2
    assert "➕" in (alert_messages(h, ZH_COORD)[-1].text or "")
    assert not alert_messages(h, INVESTIGATOR)
    # Still one card in the data model.
    [row] = await h.rows("SELECT details FROM alerts")
    assert json.loads(row["details"])["rules"] == ["BLEED_HEAVY", "COMPL_BELLY"]
    assert (await actions(h)).count("alert_raised") == 1
    [added] = await h.rows(
        "SELECT new_value FROM audit WHERE action = 'alert_delivered' AND new_value LIKE '%added%'"
    )
    assert json.loads(added["new_value"])["added"] == ["COMPL_BELLY"]

    # Nothing new: untick and tick again, Done, the bleeding answered again the same,
    # and Submit — the card is edited, no new message.
    await p.press_data(f"d:t:{occ}:COMPL:BELLY", p.last_with_buttons())
    await p.press_data(f"d:t:{occ}:COMPL:BELLY", p.last_with_buttons())
    await p.press_data(f"d:n:{occ}:COMPL", p.last_with_buttons())
    await answer_all(h, p, QUIET)
    occ, item = await asked(h, p)
    assert item is None
    await p.press_data(f"d:e:{occ}:BLEED", p.last_with_buttons())
    await answer(h, p, "BLEED", "3")
    await answer_all(h, p, {"BLEED_FAINT": "N"})
    await p.press_data(f"d:x:{occ}", p.last_with_buttons())
    assert "Your diary has been saved" in "\n".join(p.texts()[-3:])
    cards = alert_messages(h, EN_COORD)
    assert len(cards) == 2 and len(alert_messages(h, GROUP)) == 2
    # Edited since (submitted), the new copy still says what it was sent for.
    assert (cards[-1].text or "").startswith(f"➕ New on this alert: {BELLY}\n")
    assert "not submitted yet" not in (cards[-1].text or "")
    assert (await actions(h)).count("alert_delivered") == 2


async def test_after_a_resend_the_added_finding_reaches_the_investigators_too(
    h: Harness,
) -> None:
    p = await day0_patient(h, lang="en")
    await p.send("/diary")
    await answer(h, p, "BLEED", "3")
    await h.advance(minutes=15)  # unacknowledged: re-sent, now to the investigators too
    assert len(alert_messages(h, INVESTIGATOR)) == 1
    await answer(h, p, "BLEED_FAINT", "Y")  # a new urgent finding of the same diary
    last = alert_messages(h, INVESTIGATOR)[-1]
    assert len(alert_messages(h, INVESTIGATOR)) == 2
    assert (last.text or "").startswith("➕ New on this alert: Dizziness or fainting with bleeding")
