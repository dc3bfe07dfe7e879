"""Safety signals never wait for Submit (issue 10), end to end through the real bot:

- an urgent answer reaches the team while the diary is still unsubmitted, and the patient sees
  the safety text then; changing the answer updates the open alert (never withdrawn); Submit
  does not raise it again;
- a diary that closes unsubmitted (or is cut short by a pause) keeps its answers as data with
  the status "incomplete" (CSV, ODM, FHIR), and its review rules run at closing;
- a site correction re-runs the rules on that diary and on the later ones, raises at once with
  the correction as the time of awareness, and the command prints what it raised;
- one card per diary (all its urgent reasons), re-sent to investigators once per alert; a
  patient with pain 8 every day has one open alert, not thirty.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from lxml import etree

from bot.clock import from_iso
from bot.dataout import exports
from bot.domain.study import Study
from bot.escalation.cli import cmd_correct
from bot.followup import lifecycle
from bot.i18n import t
from tests.escalation_support import (
    EN_COORD,
    GROUP,
    INVESTIGATOR,
    ZH_COORD,
    actions,
    alert_messages,
    day0_patient,
    fast_harness,
    submit,
    team,
)
from tests.harness import Harness, Player
from tests.test_dataout_exports import odm_schema


@pytest.fixture
def h(escalation_team: Harness) -> Harness:
    return escalation_team


async def asked(h: Harness, p: Player) -> tuple[int, str | None]:
    """(occurrence id, item code being asked; None on the review screen) of the open diary."""
    rows = await h.rows(
        "SELECT s.occurrence_id, s.item FROM diary_sessions s JOIN patients p"
        " ON p.id = s.patient_id WHERE p.user_id = ?",
        (p.user_id,),
    )
    assert rows, "no diary is open"
    return rows[0]["occurrence_id"], rows[0]["item"]


async def answer(h: Harness, p: Player, item: str, value: str) -> None:
    """Answer the question being asked, which must be `item`."""
    occ, code = await asked(h, p)
    assert code == item, (code, item)
    kind = h.study.item(item).kind
    if kind == "multi":
        for option in value.split(","):
            await p.press_data(f"d:t:{occ}:{item}:{option}", p.last_with_buttons())
        await p.press_data(f"d:n:{occ}:{item}", p.last_with_buttons())
    elif kind in ("number", "text"):
        await p.send(value)
    else:
        await p.press_data(f"d:a:{occ}:{item}:{value}", p.last_with_buttons())


async def answer_all(h: Harness, p: Player, answers: dict[str, str]) -> None:
    """Answer whatever is asked from `answers` until the review screen (or a missing answer)."""
    for _ in range(30):
        _occ, code = await asked(h, p)
        if code is None or code not in answers:
            return
        await answer(h, p, code, answers[code])
    raise AssertionError("the diary did not reach its review screen")


QUIET = {
    "BLEED": "0",
    "URGENCY": "1",
    "LEAK": "0",
    "PAIN": "2",
    "BM": "2",
    "TENESMUS": "0",
    "FEVER": "N",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}


async def correct(h: Harness, day: int, item: str, value: str) -> int:
    """`diarybot entry correct …` through its command function, on the running bot's clock."""
    args = argparse.Namespace(
        subject="RP-001",
        day=day,
        item=item,
        value=value,
        reason="patient phoned",
        as_staff=INVESTIGATOR,
    )
    code = await cmd_correct(args, h.rt)
    await h.settle()
    return code


def card_text(h: Harness, chat: int) -> str:
    msgs = alert_messages(h, chat)
    assert msgs, f"no alert in chat {chat}"
    return msgs[-1].text or ""


# --------------------------------------------------------------------------- before Submit


async def test_urgent_answer_alerts_before_submit_and_a_change_updates_the_card(
    h: Harness,
) -> None:
    p = await day0_patient(h, lang="en")
    await p.send("/diary")
    await answer(h, p, "BLEED", "3")  # dripping blood or clots… and the phone goes down

    # The team knows now, with the diary unsubmitted; the patient sees the safety text now.
    [alert] = await h.rows("SELECT * FROM alerts")
    assert (alert["rule"], alert["level"], alert["status"]) == ("BLEED_HEAVY", "urgent", "open")
    [occ] = await h.rows("SELECT status FROM occurrences WHERE key = 'daily:0'")
    assert occ["status"] == "prompted"  # not submitted
    text = card_text(h, EN_COORD)
    assert "Dripping blood or clots" in text
    assert "The diary is not submitted yet: these are the answers so far." in text
    assert alert_messages(h, ZH_COORD) and alert_messages(h, GROUP)
    safety = [m for m in p.messages if "Your study team has been told" in (m.text or "")]
    assert len(safety) == 1 and h.study.contact_phone in (safety[0].text or "")
    # The diary goes on below the safety text: the next question is the last message.
    assert p.messages.index(safety[0]) == len(p.messages) - 2
    _occ, item = await asked(h, p)
    assert item == "BLEED_FAINT" and any(
        (d or "").startswith(f"d:a:{_occ}:BLEED_FAINT:") for _, d in p.last.flat_buttons
    )

    # The rest of the diary; then, on the review screen, the patient changes the bleeding.
    await answer(h, p, "BLEED_FAINT", "N")
    await answer_all(h, p, QUIET)
    occ, item = await asked(h, p)
    assert item is None
    await p.press_data(f"d:e:{occ}:BLEED", p.last_with_buttons())
    await answer(h, p, "BLEED", "1")

    # The open alert is updated to say so, not withdrawn: staff still decide.
    [row] = await h.rows("SELECT status, details FROM alerts")
    assert row["status"] == "open"
    text = card_text(h, EN_COORD)
    assert "Dripping blood or clots" in text  # the reason stays on the card
    assert (
        "• Rectal bleeding: Streaks on the toilet paper (first reported: Dripping blood or clots)"
        in text
    ), text
    assert (
        "✏️ Day 0: the patient changed the answer before submitting; it no longer meets: "
        "Dripping blood or clots. Please still decide on this alert."
    ) in text
    assert "Acknowledge" in [label for label, _ in alert_messages(h, EN_COORD)[-1].flat_buttons]
    zh = card_text(h, ZH_COORD)
    assert (
        t("zh_Hans")(
            "✏️ Day {day}: the patient changed the answer before submitting; it no longer "
            "meets: {reasons}. Please still decide on this alert.",
            day=0,
            reasons=t("zh_Hans")("Dripping blood or clots"),
        )
        in zh
    )

    # Changed back and submitted: no second alert, no second card.
    await p.press_data(f"d:e:{occ}:BLEED", p.last_with_buttons())
    await answer(h, p, "BLEED", "3")
    await p.press_data(f"d:e:{occ}:BLEED_FAINT", p.last_with_buttons())
    await answer(h, p, "BLEED_FAINT", "Y")
    await p.press_data(f"d:x:{occ}", p.last_with_buttons())
    assert "Your diary has been saved" in "\n".join(p.texts()[-3:])
    rows = await h.rows("SELECT id, status, details FROM alerts")
    assert len(rows) == 1, [r["details"] for r in rows]
    details = json.loads(rows[0]["details"])
    assert details["rules"] == ["BLEED_HEAVY", "BLEED_FAINT"]
    assert [e["state"] for e in details["events"]] == ["submitted"]
    assert (await actions(h)).count("alert_raised") == 1
    # One card, edited; plus one new copy when dizziness joined it (an edit does not notify),
    # which keeps saying so when it is edited.
    assert len(alert_messages(h, EN_COORD)) == 2
    text = card_text(h, EN_COORD)
    assert "Dizziness or fainting with bleeding" in text and "not submitted yet" not in text
    assert text.startswith("➕ New on this alert: Dizziness or fainting with bleeding\n"), text


async def test_several_urgent_findings_of_one_diary_are_one_card_resent_once(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, BLEED="3", BLEED_FAINT="Y", PAIN="9", EVENTS="HOSP")

    [alert] = await h.rows("SELECT * FROM alerts")
    details = json.loads(alert["details"])
    assert details["rules"] == ["BLEED_HEAVY", "BLEED_FAINT", "PAIN_SEVERE", "HOSPITAL"]
    # One card; each urgent finding that joined it after it was sent came with a new copy
    # saying so (the patient answers one question at a time; an edit does not notify).
    [_first, *added] = alert_messages(h, EN_COORD)
    card = added[-1]  # the newest copy shows the card as it is now
    assert [(m.text or "").splitlines()[0] for m in added] == [
        "➕ New on this alert: Dizziness or fainting with bleeding",
        "➕ New on this alert: Pain 8 or more",
        "➕ New on this alert: Emergency visit, hospital stay or transfusion (possible SAE)",
    ]
    for reason in (
        "Dripping blood or clots",
        "Dizziness or fainting with bleeding",
        "Pain 8 or more",
        "Emergency visit, hospital stay or transfusion (possible SAE)",
        "• Rectal or anal pain (0-10): 9",
    ):
        assert reason in (card.text or ""), card.text
    assert len(alert_messages(h, ZH_COORD)) == len(alert_messages(h, GROUP)) == 4
    # The patient was shown the safety text once while answering, once after Submit.
    assert sum("Your study team has been told" in m for m in p.texts()) == 2

    await h.advance(minutes=15)  # unacknowledged: re-sent once, to the investigators too
    assert len(alert_messages(h, INVESTIGATOR)) == 1
    assert len(alert_messages(h, EN_COORD)) == 5
    assert (await actions(h)).count("alert_resent") == 1


async def test_chronic_pain_8_every_day_is_one_open_alert_not_thirty(
    tmp_path: Path, study: Study
) -> None:
    # Without the team's group: a group takes 20 messages a minute of *real* time, and thirty
    # study days pass here in seconds (one re-send a day and the card's edits).
    async with fast_harness(tmp_path, study) as h:
        await team(h, group=False)
        await _chronic_pain(h)


async def _chronic_pain(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    for _day in range(30):
        await submit(p, PAIN="8")
        await h.advance(hours=24)
    rows = await h.rows("SELECT id, status, updates, study_day, details FROM alerts")
    assert len(rows) == 1
    [row] = rows
    assert (row["status"], row["updates"], row["study_day"]) == ("open", 29, 29)
    assert [e["day"] for e in json.loads(row["details"])["events"]] == list(range(30))
    text = card_text(h, EN_COORD)
    assert "RP-001 · Day 29" in text and "(30 diaries)" in text

    coord = h.player(EN_COORD, "en")
    await coord.send("/alerts")
    listing = coord.last.text or ""
    assert listing.count("RP-001") == 1 and "Pain 8 or more" in listing, listing

    # After acknowledgement, the next report is a new alert.
    await coord.tap("Acknowledge", alert_messages(h, EN_COORD)[0])
    await submit(p, PAIN="8")
    statuses = [r["status"] for r in await h.rows("SELECT status FROM alerts ORDER BY id")]
    assert statuses == ["acknowledged", "open"]


# --------------------------------------------------------------------------- incomplete


async def test_unsubmitted_diary_closes_incomplete_with_review_rules_and_is_exported(
    h: Harness,
) -> None:
    p = await day0_patient(h, lang="en")
    await p.send("/diary")
    unfinished = {k: v for k, v in QUIET.items() if k != "OTHER"}
    await answer_all(h, p, {**unfinished, "PAIN": "4", "EVENTS": "MED"})
    _occ, item = await asked(h, p)
    assert item == "OTHER"  # the patient stops before the last question, never submits
    assert await h.rows("SELECT * FROM alerts") == []  # review rules wait for closing

    await h.advance(hours=16)  # 12:00 next day: the window closes
    [occ] = await h.rows("SELECT * FROM occurrences WHERE key = 'daily:0'")
    assert occ["status"] == "missed" and occ["incomplete_at"] and occ["rules_run_at"]
    [alert] = await h.rows("SELECT * FROM alerts")
    assert (alert["rule"], alert["level"]) == ("NEW_MEDICINE", "review")
    text = card_text(h, EN_COORD)
    assert "The diary closed without being submitted (incomplete)." in text
    assert "diary_incomplete" in await actions(h, "diary_")

    now = h.rt.now()
    out = await exports.run(h.db_path, h.study, now, "csv")
    long = next(v for k, v in out.files.items() if "long" in k)
    rows = [
        r
        for r in csv.DictReader(io.StringIO(long.decode("utf-8-sig")))
        if r["occurrence"] == "daily:0"
    ]
    assert {r["status"] for r in rows} == {"incomplete"}
    assert {r["item"]: r["value_code"] for r in rows}["PAIN"] == "4"
    assert {r["item"]: r["value_code"] for r in rows}["EVENTS"] == "MED"

    odm = (await exports.run(h.db_path, h.study, now, "odm")).files
    raw_xml = next(iter(odm.values()))
    schema = odm_schema()
    assert schema.validate(etree.fromstring(raw_xml)), schema.error_log
    xml = raw_xml.decode()
    assert 'Value="incomplete"' in xml and 'Value="MED"' in xml

    fhir = json.loads(
        next(iter((await exports.run(h.db_path, h.study, now, "fhir")).files.values()))
    )
    [resp] = [
        e["resource"]
        for e in fhir["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    Bundle.model_validate(fhir)
    QuestionnaireResponse.model_validate(resp)
    assert resp["status"] == "stopped"
    assert "PAIN" in {i["linkId"] for i in resp["item"]}


async def test_pause_mid_diary_keeps_the_answers_incomplete_and_runs_review_rules(
    h: Harness,
) -> None:
    p = await day0_patient(h, lang="en")
    await p.send("/diary")
    await answer_all(
        h, p, {"BLEED": "0", "MUCUS": "0", "URGENCY": "1", "LEAK": "0", "PAIN": "2", "BM": "2"}
    )
    await answer_all(h, p, {"TENESMUS": "0", "FEVER": "N", "COMPL": "NONE", "EVENTS": "MED"})

    await lifecycle.pause(h.rt, "RP-001", actor="cli", reason="in hospital")
    await h.settle()
    [occ] = await h.rows("SELECT * FROM occurrences WHERE key = 'daily:0'")
    assert occ["status"] == "paused" and occ["incomplete_at"] and occ["rules_run_at"]
    [alert] = await h.rows("SELECT rule, level FROM alerts")
    assert (alert["rule"], alert["level"]) == ("NEW_MEDICINE", "review")
    kept = await h.rows("SELECT item FROM answers WHERE occurrence_id = ?", (occ["id"],))
    assert "EVENTS" in {r["item"] for r in kept}

    # Resumed inside the same window: the closed diary is not reopened.
    await lifecycle.resume(h.rt, "RP-001", actor="cli")
    await h.settle()
    [occ] = await h.rows("SELECT status FROM occurrences WHERE key = 'daily:0'")
    assert occ["status"] == "paused"


# --------------------------------------------------------------------------- corrections


async def test_correction_raises_alerts_at_once_on_that_diary_and_the_next(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three baseline diaries (pain 2), then Day 0 pain 2 and Day 1 pain 5.
    p = await h.patient(501, "RP-001", lang="en", injection=date(2026, 12, 3))
    await h.advance(hours=1)  # 20:00 Shanghai, Day -3
    for _day in range(-3, 2):
        pain = "5" if _day == 1 else "2"
        await submit(p, PAIN=pain)
        await h.advance(hours=24)
    assert await h.rows("SELECT * FROM alerts") == []

    # Day 0 was really 5: Day 1 is now the second diary in a row 3 points above baseline.
    code = await correct(h, 0, "PAIN", "5")
    out = capsys.readouterr().out
    assert code == 0
    [review] = await h.rows("SELECT * FROM alerts")
    assert (review["rule"], review["level"], review["study_day"]) == ("WORSE_PAIN", "review", 1)
    assert f"raised alert #{review['id']} (review) for Day 1: WORSE_PAIN" in out, out

    # Day 1 also had a hospital stay: an urgent alert now; awareness = the correction's time.
    corrected_at = h.rt.now()
    code = await correct(h, 1, "EVENTS", "HOSP")
    out = capsys.readouterr().out
    assert code == 0
    [urgent] = await h.rows("SELECT * FROM alerts WHERE level = 'urgent'")
    assert urgent["rule"] == "HOSPITAL"
    assert f"raised alert #{urgent['id']} (urgent) for Day 1: HOSPITAL" in out, out
    text = next(
        m.text or ""
        for m in alert_messages(h, EN_COORD)
        if f"alert #{urgent['id']}" in (m.text or "")
    )
    assert "Found by a site correction at" in text and "(time of awareness)" in text

    # Triaged as a possible SAE an hour later: the SAE clock runs from the correction.
    await h.advance(minutes=59)
    coord = h.player(EN_COORD, "en")
    await coord.press_data(f"al:ack:{urgent['id']}", alert_messages(h, EN_COORD)[-1])
    await coord.press_data(f"al:tri:{urgent['id']}:s", alert_messages(h, EN_COORD)[-1])
    [row] = await h.rows("SELECT sae_aware_at, acked_at FROM alerts WHERE id = ?", (urgent["id"],))
    assert from_iso(row["sae_aware_at"]) == corrected_at < from_iso(row["acked_at"])

    # Corrected back: the review card is told Day 0/1 no longer meet it; nothing is raised.
    code = await correct(h, 0, "PAIN", "2")
    out = capsys.readouterr().out
    assert code == 0
    assert f"alert #{review['id']} (review): Day 1 no longer meets WORSE_PAIN" in out, out
    assert "no new alert" in out
    assert len(await h.rows("SELECT * FROM alerts")) == 2


async def test_withdraw_mid_diary_keeps_the_answers_incomplete(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await p.send("/diary")
    await answer_all(h, p, {"BLEED": "0", "MUCUS": "0", "URGENCY": "1", "LEAK": "0", "PAIN": "3"})

    await lifecycle.withdraw(h.rt, "RP-001", actor="cli", reason="consent withdrawn")
    await h.settle()
    [occ] = await h.rows("SELECT * FROM occurrences WHERE key = 'daily:0'")
    assert occ["status"] == "withdrawn" and occ["incomplete_at"] and occ["rules_run_at"]
    trail = await h.rows(
        "SELECT actor, reason FROM audit WHERE action = 'diary_incomplete' AND entity = 'daily:0'"
    )
    assert [(r["actor"], r["reason"]) for r in trail] == [("cli", "patient withdrawn")]
    out = await exports.run(h.db_path, h.study, h.rt.now(), "csv")
    wide = next(v for k, v in out.files.items() if "wide" in k)
    [row] = [
        r
        for r in csv.DictReader(io.StringIO(wide.decode("utf-8-sig")))
        if r["occurrence"] == "daily:0"
    ]
    assert (row["status"], row["PAIN"], row["BM"]) == ("incomplete", "3", "")
