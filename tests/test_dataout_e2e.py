"""Data out through the real bot: /export for staff, /progress for patients, /patient's chart."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import AsyncIterator
from importlib import resources

import pytest
from lxml import etree

from bot.app import DiaryBot
from bot.clock import FakeClock, iso
from bot.dataout import charts
from bot.dataout import exports as dataout_exports
from bot.delivery.inbound import NO_LIMITS
from bot.domain.study import Study
from bot.localapi import LocalBotApi, SentMessage
from bot.sender import Pacing
from tests.conftest import T0
from tests.harness import Harness, Player, fill_diary
from tests.test_dataout_charts import png_size

STAFF = 7001
PATIENT = 501
ANSWERS = {
    "BLEED": "1",
    "URGENCY": "2",
    "LEAK": "0",
    "PAIN": "3",
    "BM": "4",
    "TENESMUS": "0",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}


@pytest.fixture
async def h(tmp_path, study: Study) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    """The real bot with unthrottled sending (these tests are about files, not pacing)."""
    api = LocalBotApi()
    await api.start()
    clock = FakeClock(T0)
    bot = await DiaryBot.create(
        db_path=tmp_path / "diary.sqlite3",
        study=study,
        clock=clock,
        token="123456:TEST-TOKEN",
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        pacing=Pacing(private_interval=0.0, private_burst=1000, group_interval=0.0),
        inbound=NO_LIMITS,
    )
    await bot.start(poll_timeout=1)
    harness = Harness(
        api=api, bot=bot, clock=clock, study=study, db_path=tmp_path / "diary.sqlite3"
    )
    try:
        yield harness
    finally:
        await bot.stop()
        await api.stop()


async def add_staff(h: Harness, telegram_id: int = STAFF, lang: str = "en") -> Player:
    async with h.rt.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO staff (telegram_id, role, name, lang, active, created_at)"
            " VALUES (?, 'coordinator', 'Anna Smith', ?, 1, ?)",
            (telegram_id, lang, iso(h.rt.now())),
        )
    return h.player(telegram_id, "en")


async def patient_with_diary(h: Harness) -> Player:
    """RP-001 (English) fills in the Day −1 baseline diary at 20:00 Shanghai."""
    p = await h.patient(PATIENT, "RP-001", lang="en")
    await h.advance(hours=1)
    await fill_diary(p, ANSWERS)
    rows = await h.rows("SELECT status FROM occurrences WHERE key = 'baseline:-1'")
    assert rows[0]["status"] == "completed"
    return p


def documents(player: Player) -> list[SentMessage]:
    return [m for m in player.messages if m.document is not None]


async def export(h: Harness, staff: Player, command: str) -> SentMessage:
    """Send /export; it answers at once, and the file follows from a background task."""
    before = len(staff.messages)
    await staff.send(command)
    doc = await h.api.wait_for_message(staff.chat_id, lambda m: m.document is not None, after=0)
    await h.settle()
    preparing, sent = staff.messages[before:]
    assert preparing.text == f"Preparing the {command.split()[1].upper()} export…"
    assert sent is doc
    return doc


async def audit_actions(h: Harness, action: str) -> list[dict[str, str]]:
    rows = await h.rows(
        "SELECT actor, new_value FROM audit WHERE action = ? ORDER BY id", (action,)
    )
    return [dict(r) for r in rows]


async def test_staff_exports_csv_as_a_zip_and_it_is_audited(h: Harness) -> None:
    await patient_with_diary(h)
    staff = await add_staff(h)
    doc = await export(h, staff, "/export csv")
    assert documents(staff) == [doc] and doc.document is not None
    name, data = doc.document
    assert name.startswith("NCT06438809_csv_") and name.endswith(".zip")
    caption, head_line = (doc.text or "").splitlines()
    assert caption == "CSV export. Subjects: 1. Diaries: 1."
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    long = files["NCT06438809_long.csv"].decode("utf-8-sig")
    assert "RP-001,baseline:-1,baseline,daily,-1,2026-11-30,completed,BLEED,1," in long
    for content in files.values():
        text = content.decode("utf-8-sig")
        assert str(PATIENT) not in text and str(STAFF) not in text and "Anna" not in text
    (entry,) = await audit_actions(h, "export")
    assert entry["actor"] == f"staff:{STAFF}"
    recorded = json.loads(entry["new_value"])
    assert recorded["to"] == f"telegram:{name}"
    assert recorded["sha256"] == {n: hashlib.sha256(c).hexdigest() for n, c in files.items()}
    # The head of the exported snapshot's audit trail: in the caption and in the entry.
    number, digest = recorded["audit_head"].split()
    assert head_line == f"Audit trail head: {number}:{digest}"


async def test_staff_exports_odm_for_one_subject(h: Harness) -> None:
    await patient_with_diary(h)
    await h.patient(502, "RP-002", lang="zh_Hans")
    staff = await add_staff(h)
    doc = await export(h, staff, "/export odm RP-001 2026-11-30")
    assert doc.document is not None
    name, data = doc.document
    assert name.endswith(".xml")
    xsd = resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    tree = etree.fromstring(data)
    assert schema.validate(tree), schema.error_log
    ns = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
    keys = [s.get("SubjectKey") for s in tree.findall("odm:ClinicalData/odm:SubjectData", ns)]
    assert keys == ["RP-001"]


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("/export", "Usage: /export csv|odm|fhir [RP-001] [2026-12-01]"),
        ("/export pdf", "Usage: /export csv|odm|fhir [RP-001] [2026-12-01]"),
        ("/export csv RP-001 RP-002", "Give at most one subject and one date."),
        ("/export csv 2026-02-30", "Please give the date as YYYY-MM-DD, like 2026-12-01."),
        ("/export fhir RP-404", "No patient RP-404."),
    ],
)
async def test_bad_export_requests_are_answered_and_change_nothing(
    h: Harness, command: str, reply: str
) -> None:
    await h.patient(PATIENT, "RP-001", lang="en")
    staff = await add_staff(h)
    before = (await h.rows("SELECT MAX(id) AS n FROM audit"))[0]["n"]
    await staff.send(command)
    assert staff.last.text == reply
    assert not documents(staff)
    # only the use of a staff command is on record (who asked for what); no export
    after = await h.rows("SELECT action, entity, new_value FROM audit WHERE id > ?", (before,))
    assert [tuple(r) for r in after] == [("staff_access", "command:/export", command)]


async def test_a_failed_export_is_said_and_not_audited(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await h.patient(PATIENT, "RP-001", lang="en")
    staff = await add_staff(h)

    async def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(dataout_exports, "run", broken)
    await staff.send("/export fhir")
    failed = await h.api.wait_for_message(
        staff.chat_id, lambda m: "failed" in (m.text or ""), after=0
    )
    assert failed.text == "The export failed. Please try again or tell the admin."
    assert not documents(staff)
    assert not await audit_actions(h, "export")


async def test_patients_cannot_export(h: Harness) -> None:
    p = await patient_with_diary(h)
    await p.send("/export csv")
    assert p.last.text == "This is not available."
    assert not documents(p)
    assert not await audit_actions(h, "export")
    (refused,) = await audit_actions(h, "unauthorized")
    assert refused["actor"] == f"user:{PATIENT}"


async def test_progress_shows_the_patients_own_chart(h: Harness) -> None:
    p = await h.patient(PATIENT, "RP-001", lang="en")
    await p.send("/progress")
    assert p.last.text == (
        "There is nothing to show yet. Your chart appears after your first diary."
    )
    await h.advance(hours=1)
    await fill_diary(p, ANSWERS)
    await p.send("/progress")
    photo = p.last
    assert photo.photo is not None
    assert png_size(photo.photo) == charts.PATIENT_SIZE
    assert photo.text == "Your diary: the last 30 days"


async def test_progress_for_strangers_says_what_the_bot_is(h: Harness) -> None:
    stranger = h.player(999, "en")
    await stranger.send("/progress")
    assert stranger.last.photo is None
    assert "symptom diary of a clinical study" in (stranger.last.text or "")


async def test_patient_command_sends_the_chart_with_the_text(h: Harness) -> None:
    await patient_with_diary(h)
    staff = await add_staff(h, lang="zh_Hans")
    await staff.send("/patient RP-001")
    chart, text = staff.messages[-2:]
    assert text.photo is None and "RP-001" in (text.text or "")
    assert chart.photo is not None
    assert png_size(chart.photo) == charts.STAFF_SIZE
