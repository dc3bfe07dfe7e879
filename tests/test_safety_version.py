"""Which approved safety text did the patient see? Every showing — the Telegram message at the
urgent answer and with the thank-you, the SMS to a web-diary patient, the web diary's safety
screen and its thank-you page — leaves a `safety_text_shown` audit entry with the study file's
`[safety].version` and the language shown, in the transaction that shows it. A revised text
(new version in the study file) is recorded from the next showing; older entries keep theirs.
A monitor sees the entries in the patient's audit trail and on the alert's console page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.domain.study import Study, load_study
from tests.console_support import console_client, member
from tests.escalation_support import QUIET, day0_patient, submit
from tests.harness import Harness, fill_diary
from tests.test_ops_study_versions import restart, study_file
from tests.web_support import WebHarness, browser, fill, web_harness

VERSION = "2026-11-30 v2"  # bot/studies/nct06438809.toml
REVISED = "2027-01-15 v3"


@pytest.fixture
def h(escalation_team: Harness) -> Harness:
    return escalation_team


async def shown(h: Harness) -> list[dict[str, Any]]:
    """The safety_text_shown entries, oldest first: (id, diary, new value)."""
    rows = await h.rows(
        "SELECT id, actor, subject, entity, new_value FROM audit"
        " WHERE action = 'safety_text_shown' ORDER BY id"
    )
    return [
        {"id": r["id"], "actor": r["actor"], "subject": r["subject"], "diary": r["entity"]}
        | json.loads(r["new_value"])
        for r in rows
    ]


async def audit_id(h: Harness, action: str, entity: str) -> int:
    [row] = await h.rows("SELECT id FROM audit WHERE action = ? AND entity = ?", (action, entity))
    return int(row["id"])


def brief(entries: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(e["channel"], e["moment"], e["safety_text_version"], e["lang"]) for e in entries]


async def test_telegram_urgent_answer_records_the_version_shown(h: Harness) -> None:
    p = await day0_patient(h)  # zh_Hans
    await fill_diary(p, {**QUIET, "BLEED": "3", "BLEED_FAINT": "N"}, submit=False)
    [alert] = await h.rows("SELECT id FROM alerts")
    [at_answer] = await shown(h)
    assert brief([at_answer]) == [("telegram", "answer", VERSION, "zh_Hans")]
    assert at_answer["alerts"] == [alert["id"]]
    assert (at_answer["actor"], at_answer["subject"]) == ("system", "RP-001")
    assert at_answer["diary"] == "daily:0"
    # In the step of the urgent answer: after it and its alert, before the next answer.
    assert (
        await audit_id(h, "answer", "daily:0/BLEED")
        < await audit_id(h, "alert_raised", f"alert:{alert['id']}")
        < at_answer["id"]
        < await audit_id(h, "answer", "daily:0/BLEED_FAINT")
    )
    safety_messages = [m for m in p.texts() if h.study.safety.text("zh_Hans") in m]
    assert len(safety_messages) == 1  # the message that entry records

    await p.tap("提交")
    entries = await shown(h)
    assert brief(entries) == [
        ("telegram", "answer", VERSION, "zh_Hans"),
        ("telegram", "submit", VERSION, "zh_Hans"),  # shown again with the thank-you
    ]
    assert entries[1]["id"] > await audit_id(h, "diary_submitted", "daily:0")
    assert len([m for m in p.texts() if h.study.safety.text("zh_Hans") in m]) == 2

    # The monitor: in the patient's audit trail, and on the alert's page.
    async with console_client(h) as client:
        await member(h, client, "mon@example.org", "monitor")
        html = await (await client.get("/console/patients/RP-001")).text()
        assert html.count("safety_text_shown") == 2 and VERSION in html
        html = await (await client.get(f"/console/alerts/{alert['id']}")).text()
        assert 'id="safety-shown"' in html
        table = html.split('id="safety-shown"', 1)[1].split("</table>", 1)[0]
        assert table.count(VERSION) == 2
        assert "At the urgent answer" in table and "After Submit" in table
        assert "Telegram" in table and "zh_Hans" in table


async def test_no_safety_text_no_record(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="5")  # nothing urgent
    assert await shown(h) == []


@pytest.fixture
async def wh(tmp_path: Path, study: Study) -> Any:
    async with web_harness(tmp_path, study) as w:
        yield w


async def test_web_urgent_answer_records_the_sms_and_the_screens(wh: WebHarness) -> None:
    link = await wh.enroll(lang="en")
    await wh.h.advance(hours=1, minutes=5)  # the Day -1 diary is open
    urgent = {**QUIET, "BLEED": "3", "BLEED_FAINT": "N"}
    async with browser() as b:
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})
        page = await fill(wh, b, link, urgent)
        assert page.url.endswith("/done")
        [screen] = [p for p in b.history if p.url.endswith("?m=safety")]
        assert wh.h.study.safety.text("en") in screen.plain
        assert wh.h.study.safety.text("en") in page.plain
    [alert] = await wh.h.rows("SELECT id FROM alerts")
    entries = await shown(wh.h)
    assert brief(entries) == [
        ("sms", "answer", VERSION, "en"),  # queued with the urgent answer
        ("web", "answer", VERSION, "en"),  # the safety screen above the next question
        ("sms", "submit", VERSION, "en"),
        ("web", "submit", VERSION, "en"),  # the thank-you page
    ]
    assert all(e["alerts"] == [alert["id"]] and e["diary"] == "baseline:-1" for e in entries)
    assert entries[0]["sms_template"] == "SMS_000010"  # the approved template (en)
    # Each in its own step: the SMS with the answer, the screen with its page view.
    sms = await wh.h.rows(
        "SELECT payload FROM outbox WHERE channel = 'sms' AND payload LIKE '%\"safety\"%'"
    )
    assert len(sms) == 2
    assert (
        await audit_id(h=wh.h, action="answer", entity="baseline:-1/BLEED")
        < entries[0]["id"]
        < entries[1]["id"]
        < await audit_id(h=wh.h, action="answer", entity="baseline:-1/BLEED_FAINT")
    )
    views = await wh.h.rows(
        "SELECT id FROM audit WHERE action = 'web_view' AND new_value LIKE '%\"done\"%'"
    )
    assert [v["id"] + 1 for v in views] == [entries[3]["id"]]


async def test_a_revised_text_is_recorded_from_the_next_showing(h: Harness, tmp_path: Path) -> None:
    p = await day0_patient(h, lang="en")
    await submit(p, BLEED="3", BLEED_FAINT="N")  # Day 0, under the approved text v2
    assert {e["safety_text_version"] for e in await shown(h)} == {VERSION}

    # The ethics committee approves a revised text: a new version in (a copy of) the study file.
    revised = load_study(
        study_file(
            tmp_path,
            "revised.toml",
            f'version = "{VERSION}"',
            f'version = "{REVISED}"',
        )
    )
    assert revised.safety.version == REVISED
    h = await restart(h, revised, h.clock.now())
    try:
        await h.advance(days=1)  # Day 1 at 20:00
        await submit(p, PAIN="9")
        entries = await shown(h)
        assert [(e["diary"], e["moment"], e["safety_text_version"]) for e in entries] == [
            ("daily:0", "answer", VERSION),
            ("daily:0", "submit", VERSION),  # the older records keep the old version
            ("daily:1", "answer", REVISED),
            ("daily:1", "submit", REVISED),
        ]
    finally:
        await h.bot.stop()
