"""Escalation end to end: a patient's alarming answer reaches the study team, who acknowledge,
triage and report it; unacknowledged alerts come back; repeats update instead of stacking."""

from __future__ import annotations

import json

import pytest

from bot.escalation.views import alert_card
from bot.i18n import t
from storage import alerts as store
from tests.escalation_support import (
    ADMIN,
    EN_COORD,
    GROUP,
    INVESTIGATOR,
    ZH_COORD,
    actions,
    alert_messages,
    datas,
    day0_patient,
    submit,
)
from tests.harness import Harness


@pytest.fixture
def h(escalation_team: Harness) -> Harness:
    return escalation_team


async def test_dripping_blood_safety_text_ack_triage_sae_reminders(h: Harness) -> None:
    p = await day0_patient(h)
    await submit(p, BLEED="3", BLEED_FAINT="N")

    # The patient: thank-you with "I made a mistake", then the approved safety text + phone.
    thanks, safety = p.messages[-2], p.messages[-1]
    assert any(d.startswith("dc:new:") for d in datas(thanks))
    assert h.study.contact_phone in (safety.text or "")
    assert h.study.emergency_number in (safety.text or "")

    [alert] = await h.rows("SELECT * FROM alerts")
    assert (alert["rule"], alert["level"], alert["status"]) == ("BLEED_HEAVY", "urgent", "open")
    aid = alert["id"]

    # Both coordinators and the group get it; the investigator not yet.
    [en_msg] = alert_messages(h, EN_COORD)
    [zh_msg] = alert_messages(h, ZH_COORD)
    [group_msg] = alert_messages(h, GROUP)
    assert alert_messages(h, INVESTIGATOR) == []
    en = en_msg.text or ""
    for expected in (
        "URGENT",
        "RP-001 · Day 0",
        "Dripping blood or clots",
        "• Rectal bleeding: Dripping blood or clots",
        "• Dizzy or faint with bleeding: No",
        "Answered at 20:00 (0 min ago)",
        "No baseline (fewer than 3",
        "Waiting for acknowledgement",
    ):
        assert expected in en, en
    assert "Wang" not in en and "Test" not in en  # subject ID only, never a name
    for msg in (zh_msg, group_msg):
        assert "RP-001" in (msg.text or "")
        assert datas(msg) == [f"al:ack:{aid}"]
    # The zh coordinator's copy is the card drawn in zh_Hans (whatever the catalog holds now).
    stored = await store.get(h.rt.db.conn, aid)
    assert stored is not None
    zh_text, _ = alert_card(t("zh_Hans"), h.study, stored, kind="alert", now=h.rt.now(), names={})
    assert zh_msg.text == zh_text
    copies = await h.rows("SELECT chat_id, lang FROM alert_copies ORDER BY chat_id")
    assert {(r["chat_id"], r["lang"]) for r in copies} == {
        (GROUP, "zh_Hans"),
        (ZH_COORD, "zh_Hans"),
        (EN_COORD, "en"),
    }

    # Five minutes later the English coordinator acknowledges: every copy shows it.
    await h.advance(minutes=5)
    en_coord = h.player(EN_COORD, "en")
    await en_coord.tap("Acknowledge", en_msg)
    assert en_coord.last_toast == "Acknowledged."
    en_msg, zh_msg, group_msg = (
        alert_messages(h, EN_COORD)[0],
        alert_messages(h, ZH_COORD)[0],
        alert_messages(h, GROUP)[0],
    )
    assert "✅ Acknowledged by Anna Smith at 20:05" in (en_msg.text or "")
    assert "Answered at 20:00 (5 min ago)" in (en_msg.text or "")
    for msg in (zh_msg, group_msg):
        assert msg.edits >= 1 and "Anna Smith" in (msg.text or "")
        assert f"al:tri:{aid}:s" in datas(msg)
        assert f"al:ack:{aid}" not in datas(msg)

    # A second acknowledgement (the other coordinator, a moment later) changes nothing.
    zh_coord = h.player(ZH_COORD, "zh-hans")
    await zh_coord.press_data(f"al:ack:{aid}", zh_msg)
    assert "Anna Smith" in zh_coord.last_toast
    row = (await h.rows("SELECT acked_by FROM alerts WHERE id = ?", (aid,)))[0]
    assert row["acked_by"] == EN_COORD

    # Triage: possible SAE → awareness recorded and shown, "Reported to sponsor" offered.
    await en_coord.tap("Possible SAE", en_msg)
    en_text = alert_messages(h, EN_COORD)[0].text or ""
    assert "Triage: Possible SAE (Anna Smith, 20:05)" in en_text
    assert "Aware since 20:05" in en_text
    assert "Not yet reported to the sponsor: 0 min of 24 h" in en_text
    assert f"al:sae:{aid}" in datas(alert_messages(h, ZH_COORD)[0])
    assert "note" in (en_coord.last.text or "")  # the optional note is offered privately
    row = (await h.rows("SELECT * FROM alerts WHERE id = ?", (aid,)))[0]
    assert row["triage"] == "sae" and row["sae_aware_at"] == row["acked_at"]

    # The note, typed as the answer to that prompt.
    await en_coord.send("Called patient, going to ER")
    assert "Note saved on alert" in en_coord.last_text
    assert t("zh_Hans")(
        "📝 Note ({name}): {note}", name="Anna Smith", note="Called patient, going to ER"
    ) in (alert_messages(h, ZH_COORD)[0].text or "")

    # Reminders every 60 min until reported, to coordinators, investigator and group.
    await h.advance(minutes=59)
    assert alert_messages(h, INVESTIGATOR) == []
    await h.advance(minutes=1)
    [reminder] = alert_messages(h, INVESTIGATOR)
    assert "Possible SAE not yet reported to the sponsor: 1 h 0 min of 24 h" in (
        reminder.text or ""
    )
    assert len(alert_messages(h, EN_COORD)) == 2
    assert len(alert_messages(h, GROUP)) == 2
    await h.advance(minutes=60)
    assert "2 h 0 min of 24 h" in (alert_messages(h, INVESTIGATOR)[-1].text or "")

    # The investigator reports it to the sponsor: reminders stop; every copy says so.
    investigator = h.player(INVESTIGATOR, "en")
    await investigator.tap("Reported to sponsor")
    for chat in (EN_COORD, INVESTIGATOR):
        for msg in alert_messages(h, chat):
            assert "Reported to the sponsor by Dr Li at 22:05 (2 h 0 min after awareness)" in (
                msg.text or ""
            ), msg.text
            assert f"al:sae:{aid}" not in datas(msg)
    count = len(h.api.all_messages())
    await h.advance(hours=3)
    assert len(h.api.all_messages()) == count  # no reminder, no re-send

    assert await actions(h) == [
        "alert_raised",  # at the bleeding answer, before Submit
        "alert_delivered",
        "alert_updated",  # the dizziness answer joins the card
        "alert_updated",  # submitted: the card no longer says "not submitted yet"
        "alert_acknowledged",
        "alert_triaged",
        "alert_note",
        "alert_sae_reminder",
        "alert_sae_reminder",
        "alert_sae_reported",
        "alert_closed",
    ]
    row = (await h.rows("SELECT status FROM alerts WHERE id = ?", (aid,)))[0]
    assert row["status"] == "closed"


async def test_unacknowledged_urgent_alert_is_resent_and_escalated(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="9")
    [alert] = await h.rows("SELECT id, rule FROM alerts")
    assert alert["rule"] == "PAIN_SEVERE"

    await h.advance(minutes=14)
    assert len(alert_messages(h, EN_COORD)) == 1
    assert alert_messages(h, INVESTIGATOR) == []

    await h.advance(minutes=1)  # +15 min: re-sent, and now the investigator too
    assert len(alert_messages(h, EN_COORD)) == 2
    assert len(alert_messages(h, ZH_COORD)) == 2
    assert len(alert_messages(h, GROUP)) == 2
    [inv] = alert_messages(h, INVESTIGATOR)
    assert (inv.text or "").startswith("🔁 Not acknowledged for 15 min")
    assert "Pain 8 or more" in (inv.text or "")
    assert alert_messages(h, ADMIN) == []

    await h.advance(minutes=15)  # +30 min: again
    assert len(alert_messages(h, INVESTIGATOR)) == 2
    assert "Not acknowledged for 30 min" in (alert_messages(h, INVESTIGATOR)[-1].text or "")

    # The investigator acknowledges on a re-sent copy: every copy everywhere is edited.
    await h.player(INVESTIGATOR, "en").tap("Acknowledge")
    for chat in (EN_COORD, ZH_COORD, GROUP, INVESTIGATOR):
        for msg in alert_messages(h, chat):
            assert "Dr Li" in (msg.text or ""), (chat, msg.text)
            assert "Not acknowledged" not in (msg.text or "")
    count = len(h.api.all_messages())
    await h.advance(minutes=45)
    assert len(h.api.all_messages()) == count  # no more re-sends
    assert (await actions(h)).count("alert_resent") == 2


async def test_same_rule_on_next_diary_updates_instead_of_stacking(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="9")
    first = alert_messages(h, EN_COORD)[0]
    assert "Rectal or anal pain (0-10): 9" in (first.text or "")

    await h.advance(hours=24)  # Day 1 prompt (one re-send happened meanwhile)
    before = len(alert_messages(h, EN_COORD))
    await submit(p, PAIN="8")
    assert "Your study team has been told" in p.last_text  # the safety text again

    rows = await h.rows("SELECT * FROM alerts")
    assert len(rows) == 1
    assert rows[0]["updates"] == 1 and rows[0]["study_day"] == 1
    events = json.loads(rows[0]["details"])["events"]
    assert [e["answers"]["PAIN"] for e in events] == ["9", "8"]
    assert len(alert_messages(h, EN_COORD)) == before  # edited, not stacked
    # (the newest copy in each chat shows new diaries; every copy shows changes of state)
    text = alert_messages(h, EN_COORD)[-1].text or ""
    assert "RP-001 · Day 1" in text
    assert "Rectal or anal pain (0-10): 8" in text
    assert "also on Day 0 (2 diaries)" in text
    assert "alert_updated" in await actions(h)

    # Once acknowledged, a new finding is a new alert that needs its own acknowledgement.
    await h.player(EN_COORD, "en").tap("Acknowledge", alert_messages(h, EN_COORD)[0])
    await h.advance(hours=24)
    await submit(p, PAIN="10")
    rows = await h.rows("SELECT status FROM alerts ORDER BY id")
    assert [r["status"] for r in rows] == ["acknowledged", "open"]


async def test_patient_and_stranger_cannot_use_staff_buttons_or_commands(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, BLEED="3", BLEED_FAINT="Y")
    aid = (await h.rows("SELECT id FROM alerts WHERE rule = 'BLEED_HEAVY'"))[0]["id"]

    await p.press_data(f"al:ack:{aid}")  # a forged staff button from the patient's chat
    assert p.last_toast == "This is not available."
    stranger = h.player(777, "en")
    await stranger.press_data(f"al:tri:{aid}:n", p.last)
    assert stranger.last_toast == "This is not available."
    await stranger.send("/alerts")
    assert stranger.last.text == "This is not available."
    await p.send("/patient RP-001")
    assert p.last.text == "This is not available."

    # An admin may look but not take clinical responsibility.
    admin = h.player(ADMIN, "en")
    await admin.press_data(f"al:ack:{aid}", p.last)
    assert admin.last_toast == "Your role (admin) cannot do this."

    rows = await h.rows("SELECT status FROM alerts")
    assert {r["status"] for r in rows} == {"open"}
    refused = await h.rows("SELECT actor, entity FROM audit WHERE action = 'unauthorized'")
    assert [(r["actor"], r["entity"]) for r in refused] == [
        ("user:501", "button:al:ack"),
        ("user:501", "command:/patient"),
        (f"staff:{ADMIN}", "button:al:ack"),
    ]
    # a stranger's attempts are counted for one audit entry per hour (issue 11)
    counted = await h.rows("SELECT user_id, action, count FROM stranger_activity ORDER BY action")
    assert [tuple(r) for r in counted] == [
        (777, "unauthorized:button:al:tri", 1),
        (777, "unauthorized:command:/alerts", 1),
    ]

    # A staff member who leaves loses access at once.
    from tests.escalation_support import staff_cli

    await staff_cli(h, staff_command="remove", telegram_id=EN_COORD)
    en_coord = h.player(EN_COORD, "en")
    await en_coord.tap("Acknowledge", alert_messages(h, EN_COORD)[0])
    assert en_coord.last_toast == "This is not available."
    assert {r["status"] for r in await h.rows("SELECT status FROM alerts")} == {"open"}


async def test_group_members_acknowledge_in_the_group(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, EVENTS="HOSP")
    [group_msg] = alert_messages(h, GROUP)
    aid = (await h.rows("SELECT id FROM alerts"))[0]["id"]
    # A group member who is not staff is refused; a coordinator's tap in the group works.
    h.api.press(888, group_msg.message_id, f"al:ack:{aid}", chat_id=GROUP, language_code="en")
    await h.settle()
    assert h.api.callback_answers()[-1]["text"] == "This is not available."
    h.api.press(ZH_COORD, group_msg.message_id, f"al:ack:{aid}", chat_id=GROUP)
    await h.settle()
    row = (await h.rows("SELECT status, acked_by FROM alerts"))[0]
    assert (row["status"], row["acked_by"]) == ("acknowledged", ZH_COORD)
    assert "Wang Fang" in (alert_messages(h, EN_COORD)[0].text or "")
    # Triage in the group: the note is asked for in the coordinator's private chat.
    h.api.press(ZH_COORD, group_msg.message_id, f"al:tri:{aid}:a", chat_id=GROUP)
    await h.settle()
    assert "#" in (h.api.messages(ZH_COORD)[-1].text or "")
    assert (await h.rows("SELECT status, triage FROM alerts"))[0]["triage"] == "ae"
