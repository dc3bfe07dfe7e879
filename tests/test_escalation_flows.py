"""Escalation flows around the alert: "I made a mistake" → review alert → `entry correct`;
compliance alerts; staff notes as replies; the staff commands and their refusals."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.cli import main
from bot.i18n import t
from tests.escalation_support import (
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


async def test_data_change_request_becomes_a_review_alert(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="2")
    thanks = p.messages[-1]
    assert "Thank you" in (thanks.text or "")
    assert await h.rows("SELECT * FROM alerts") == []  # a quiet diary raises nothing

    # Cancel first: nothing is sent, and later text is not taken as a request.
    await p.tap("I made a mistake", thanks)
    assert "What is wrong in this diary?" in p.last_text
    await p.tap("Cancel")
    assert p.last.text == "Cancelled. Nothing was sent to your study team."
    await p.send("hello")
    assert "To fill in your diary" in p.last.text

    # Another patient's diary, or a forged id, is refused.
    occ = (await h.rows("SELECT id FROM occurrences WHERE status = 'completed'"))[0]["id"]
    await p.press_data(f"dc:new:{occ + 1}", thanks)
    assert p.last_toast == "This is not available."

    await p.tap("I made a mistake", thanks)
    await p.send("x" * (h.study.max_free_text + 1))
    assert "That is too long" in p.last.text
    await p.send("My pain\x1b[31m was 7")  # control characters: refused, asked again
    assert p.last.text == (
        "Your message contains invisible control characters that cannot be saved."
        " Please type it again as plain text."
    )
    assert await h.rows("SELECT * FROM alerts") == []
    await p.send("My pain was 7, not 2")
    assert "Your study team has been told and will check your diary" in p.last.text

    [alert] = await h.rows("SELECT * FROM alerts")
    assert (alert["rule"], alert["level"], alert["next_resend_at"]) == (
        "DATA_CHANGE",
        "review",
        None,
    )
    [msg] = alert_messages(h, EN_COORD)
    text = msg.text or ""
    assert "🟠 Review" in text and "Data-change request from the patient" in text
    assert "Diary of Day 0: \u201cMy pain was 7, not 2\u201d" in text
    assert alert_messages(h, GROUP) and not alert_messages(h, INVESTIGATOR)
    # Review alerts are not re-sent.
    await h.advance(hours=2)
    assert len(alert_messages(h, EN_COORD)) == 1
    assert [a for a in await actions(h) if a == "alert_resent"] == []

    # Acknowledging a data-change request closes it (the correction is done with the CLI).
    await h.player(EN_COORD, "en").tap("Acknowledge", msg)
    assert (await h.rows("SELECT status FROM alerts"))[0]["status"] == "closed"
    assert (
        "Anna Smith" in (zh_text := alert_messages(h, ZH_COORD)[0].text or "")
        and "22:00" in zh_text
    )


async def test_a_review_alert_is_in_each_digest_until_acknowledged(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="2")
    await p.tap("I made a mistake", p.messages[-1])
    await p.send("My pain was 7, not 2")
    listed = "RP-001 (Data-change request from the patient)"

    def digests() -> list[str]:
        return [m.text or "" for m in h.api.messages(EN_COORD) if "Daily summary" in (m.text or "")]

    await h.advance(hours=14)  # the next morning's 09:00 digest
    assert len(digests()) == 1 and listed in digests()[-1], digests()
    [card] = alert_messages(h, EN_COORD)
    await h.player(EN_COORD, "en").tap("Acknowledge", card)
    await h.advance(hours=24)  # the digest after: no longer listed
    assert len(digests()) == 2 and listed not in digests()[-1], digests()


async def _cli(h: Harness, monkeypatch, *argv: str) -> int:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIARYBOT_DB", str(h.db_path))
    monkeypatch.delenv("DIARYBOT_STUDY", raising=False)
    return await asyncio.to_thread(main, list(argv))


async def test_entry_correct_keeps_the_original_in_the_audit(
    h: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="2")
    base = ["entry", "correct", "--as", "1001", "--subject", "RP-001", "--day", "0"]

    # Refusals: exit 2, one line, nothing written.
    assert (
        await _cli(h, monkeypatch, *base, "--item", "PAIN", "--value", "11", "--reason", "x") == 2
    )
    assert "bad value '11' for PAIN" in capsys.readouterr().err
    assert await _cli(h, monkeypatch, *base, "--item", "NOPE", "--value", "1", "--reason", "x") == 2
    assert "unknown item" in capsys.readouterr().err
    day5 = ["entry", "correct", "--as", "1001", "--subject", "RP-001", "--day", "5"]
    assert await _cli(h, monkeypatch, *day5, "--item", "PAIN", "--value", "5", "--reason", "x") == 2
    assert "no answered diary on Day 5" in capsys.readouterr().err
    assert await _cli(h, monkeypatch, *base, "--item", "PAIN", "--value", "5", "--reason", " ") == 2
    assert "reason is required" in capsys.readouterr().err
    # The command names a coordinator or investigator, who must exist and be allowed.
    plain = ["entry", "correct", "--subject", "RP-001", "--day", "0", "--item", "PAIN"]
    with pytest.raises(SystemExit) as usage:  # argparse: a required option is missing
        await _cli(h, monkeypatch, *plain, "--value", "5", "--reason", "r")
    assert usage.value.code == 2 and "--as" in capsys.readouterr().err
    for who, why in (("4242", "no active staff member"), ("1004", "admin may not correct")):
        argv = [*plain, "--as", who, "--value", "5", "--reason", "r"]
        assert await _cli(h, monkeypatch, *argv) == 2
        assert why in capsys.readouterr().err
    assert await h.rows("SELECT * FROM audit WHERE action = 'answer_corrected'") == []

    code = await _cli(
        h, monkeypatch, *base, "--item", "PAIN", "--value", "5", "--reason", "patient call 1 Dec"
    )
    assert code == 0
    assert "PAIN: 2 -> 5" in capsys.readouterr().out
    [answer] = await h.rows("SELECT value FROM answers WHERE item = 'PAIN'")
    assert answer["value"] == "5"
    trail = await h.rows(
        "SELECT action, old_value, new_value, reason, actor FROM audit"
        " WHERE entity = 'daily:0/PAIN' ORDER BY id"
    )
    assert [(r["action"], r["old_value"], r["new_value"]) for r in trail] == [
        ("answer", None, "2"),
        ("answer_corrected", "2", "5"),
    ]
    assert trail[-1]["reason"] == "patient call 1 Dec" and trail[-1]["actor"] == "staff:1001"

    # Bleeding corrected to "dripping": the follow-up now applies, and the rule is reported.
    code = await _cli(h, monkeypatch, *base, "--item", "BLEED", "--value", "3", "--reason", "r")
    out = capsys.readouterr().out
    assert code == 0
    assert "BLEED_FAINT now applies but has no answer" in out
    assert "meets rule BLEED_HEAVY (urgent)" in out
    # …and back to none: the follow-up answer given meanwhile is dropped, audited.
    code = await _cli(
        h, monkeypatch, *base, "--item", "BLEED_FAINT", "--value", "N", "--reason", "r"
    )
    assert code == 0
    code = await _cli(h, monkeypatch, *base, "--item", "BLEED", "--value", "0", "--reason", "r")
    assert "dropped BLEED_FAINT" in capsys.readouterr().out
    assert await h.rows("SELECT * FROM answers WHERE item = 'BLEED_FAINT'") == []
    dropped = await h.rows("SELECT old_value FROM audit WHERE action = 'answer_dropped'")
    assert [r["old_value"] for r in dropped] == ["N"]


async def test_blocked_patient_raises_one_compliance_alert(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p)
    h.api.block(p.chat_id)
    await h.advance(hours=24)  # the Day 1 prompt meets 403
    [alert] = await h.rows("SELECT * FROM alerts")
    assert (alert["rule"], alert["level"]) == ("BLOCKED", "compliance")
    [msg] = alert_messages(h, EN_COORD)
    assert "🔵 Compliance" in (msg.text or "") and "blocked the bot" in (msg.text or "")
    await h.advance(hours=24)  # nothing more is sent to a blocked patient; still one alert
    assert len(await h.rows("SELECT * FROM alerts")) == 1
    await h.player(EN_COORD, "en").tap("Acknowledge", msg)
    assert (await h.rows("SELECT status FROM alerts"))[0]["status"] == "closed"


async def test_blocked_alert_closes_itself_when_the_patient_writes_again(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    h.api.block(p.chat_id)
    await h.advance(hours=3)  # the reminder meets 403
    assert [r["rule"] for r in await h.rows("SELECT rule FROM alerts")] == ["BLOCKED"]
    h.api.unblock(p.chat_id)
    await p.send("/diary")
    [row] = await h.rows("SELECT status, acked_at FROM alerts")
    assert (row["status"], row["acked_at"]) == ("closed", None)
    text = alert_messages(h, ZH_COORD)[0].text or ""
    zh = t("zh_Hans")
    assert (
        zh("✅ The patient wrote to the bot again at {time}: reachable again.", time="23:00")
        in text
    )
    closed = await h.rows("SELECT actor, reason FROM audit WHERE action = 'alert_closed'")
    assert [(r["actor"], r["reason"]) for r in closed] == [
        ("system", "the patient wrote to the bot again")
    ]


async def test_three_missed_diaries_raise_a_compliance_alert(h: Harness) -> None:
    await day0_patient(h, lang="en")
    await h.advance(hours=24)
    await h.advance(hours=24)
    assert await h.rows("SELECT * FROM alerts") == []
    await h.advance(hours=24)  # Days 0, 1, 2 missed
    [alert] = await h.rows("SELECT * FROM alerts")
    assert (alert["rule"], alert["level"]) == ("MISSED", "compliance")
    text = alert_messages(h, EN_COORD)[0].text or ""
    assert "Diaries missed in a row" in text and "Missed diaries: Day 0, 1, 2" in text
    await h.advance(hours=24)  # the run grows: the same alert is updated, not a new one
    assert len(await h.rows("SELECT * FROM alerts")) == 1


async def test_note_typed_as_a_reply_to_the_alert(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, OTHER="Y", OTHER_TEXT="rash on my arm")
    [msg] = alert_messages(h, EN_COORD)
    assert "Description of the new health problem: rash on my arm" in (msg.text or "")
    coord = h.player(EN_COORD, "en")

    async def reply(text: str) -> None:
        h.api.add_raw_update(
            {
                "message": {
                    "message_id": 9000 + len(h.api.all_messages()),
                    "date": 0,
                    "chat": {"id": EN_COORD, "type": "private", "first_name": "Anna"},
                    "from": {"id": EN_COORD, "is_bot": False, "first_name": "Anna"},
                    "text": text,
                    "reply_to_message": h.api.state.message_dict(msg, nested=True),
                }
            }
        )
        await h.settle()

    await reply("too early")
    assert coord.last.text == "Please acknowledge the alert first."
    await coord.tap("Acknowledge", msg)
    await reply("Photo\x07 requested\x00")  # control characters: refused, nothing saved
    assert coord.last.text == (
        "Your message contains invisible control characters that cannot be saved."
        " Please type it again as plain text."
    )
    await reply("Photo requested")
    assert coord.last.text == "Note saved on alert #1."
    assert t("zh_Hans")("📝 Note ({name}): {note}", name="Anna Smith", note="Photo requested") in (
        alert_messages(h, ZH_COORD)[0].text or ""
    )
    notes = await h.rows("SELECT new_value, actor FROM audit WHERE action = 'alert_note'")
    assert [(r["new_value"], r["actor"]) for r in notes] == [("Photo requested", "staff:1002")]


async def test_staff_commands(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="9", EVENTS="MED")
    coord = h.player(EN_COORD, "en")

    await coord.send("/alerts")
    text = coord.last.text or ""
    assert text.startswith("Open alerts, oldest first:")
    assert "#1 RP-001 · Day 0 · Pain 8 or more" in text
    assert "#2 RP-001 · Day 0 · Rescue treatment or new medicine for bowel symptoms" in text
    assert datas(coord.last) == ["al:show:1", "al:show:2"]
    await coord.tap("Show #2")  # a fresh copy here, edited like the others
    shown = coord.last
    assert "alert #2" in (shown.text or "") and datas(shown) == ["al:ack:2"]
    await coord.tap("Acknowledge", shown)
    assert "Anna Smith" in (alert_messages(h, ZH_COORD)[-1].text or "")

    await coord.send("/patients")
    line = coord.last.text or ""
    assert line.startswith("RP-001 · Day 0 · Daily diary · last diary: ")
    assert line.endswith("· 7 days: 1/1 (100%) · open alerts: 2")

    await coord.send("/patient RP-001")
    detail = coord.last.text or ""  # after the chart (bot/dataout)
    assert coord.messages[-2].photo is not None
    assert "Last 14 days:" in detail and "PAIN 9" in detail and "EVENTS MED" in detail
    assert "No baseline (fewer than 3" in detail
    await coord.send("/patient")
    assert coord.last.text == "Usage: /patient RP-001"
    await coord.send("/patient RP-999")
    assert coord.last.text == "No patient RP-999."
    # every use of a staff command is on the audit trail: who looked at what, and when
    accessed = await h.rows(
        "SELECT actor, entity, new_value FROM audit WHERE action = 'staff_access' ORDER BY id"
    )
    assert [tuple(r) for r in accessed] == [
        (f"staff:{EN_COORD}", "command:/alerts", "/alerts"),
        (f"staff:{EN_COORD}", "command:/patients", "/patients"),
        (f"staff:{EN_COORD}", "command:/patient", "/patient RP-001"),
        (f"staff:{EN_COORD}", "command:/patient", "/patient"),
        (f"staff:{EN_COORD}", "command:/patient", "/patient RP-999"),
    ]

    # /enroll: refusals write nothing; a good one gives the code and the link.
    for bad, answer in (
        ("/enroll", "Usage: /enroll RP-004 2026-12-10 zh"),
        ("/enroll RP 4 2026-12-10 zh", "Usage: /enroll RP-004 2026-12-10 zh"),
        ("/enroll RP/4 2026-12-10 zh", "Subject IDs use letters"),
        ("/enroll RP-004 2026-13-10 zh", "Please give the injection date as YYYY-MM-DD"),
        ("/enroll RP-004 2026-12-10 fr", "The language must be zh or en."),
        ("/enroll RP-001 2026-12-10 zh", "RP-001 is already enrolled."),
    ):
        await coord.send(bad)
        assert (coord.last.text or "").startswith(answer), (bad, coord.last.text)
    assert len(await h.rows("SELECT * FROM patients")) == 1
    await coord.send("/enroll RP-004 2026-12-10 zh")
    reply = coord.last.text or ""
    assert reply.startswith("RP-004 enrolled; Day 0 is 10 December 2026.")
    assert "One-time code: " in reply and "https://t.me/" in reply
    [row] = await h.rows("SELECT lang, timezone FROM patients WHERE subject = 'RP-004'")
    assert (row["lang"], row["timezone"]) == ("zh_Hans", "Asia/Shanghai")
    enrol = await h.rows("SELECT actor FROM audit WHERE action = 'enrol' AND subject = 'RP-004'")
    assert enrol[0]["actor"] == f"staff:{EN_COORD}"
    stored = json.dumps([dict(r) for r in await h.rows("SELECT * FROM audit")])
    code = reply.split("One-time code: ")[1].split(" ")[0]
    assert code not in stored  # the code is never written to the audit trail
