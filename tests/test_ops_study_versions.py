"""The study definition is versioned: the first start records it, a changed file is a new
version (audited), answers and diaries keep the version they were asked under, the ODM export
has one MetaDataVersion per version, and a file removing an option code that stored answers use
is refused at start-up with the code named, changing nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from importlib import resources
from pathlib import Path

import pytest
from lxml import etree

from bot.app import DiaryBot
from bot.cli import main
from bot.clock import FakeClock
from bot.dataout import exports
from bot.domain.study import SHIPPED_PLACEHOLDER_PHONE, Study, default_study_path, load_study
from bot.services.study_versions import StudyChangeRefused, removed_in_use
from tests.dataout_seed import SeedFile, seed_file
from tests.harness import Harness, fill_diary

ODM = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
ANSWERS = {
    "BLEED": "1",
    "URGENCY": "2",
    "LEAK": "0",
    "PAIN": "3",
    "BM": "4",
    "TENESMUS": "0",
    "FEVER": "N",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}
URGENCY_2 = '  { code = "2", value = 2, text = "Moderate" },\n'


def study_file(folder: Path, name: str, old: str, new: str) -> Path:
    text = default_study_path().read_text(encoding="utf-8")
    assert old in text
    path = folder / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


async def restart(h: Harness, study: Study, at: datetime) -> Harness:
    await h.bot.stop()
    clock = FakeClock(at)
    bot = await DiaryBot.create(
        db_path=h.db_path,
        study=study,
        clock=clock,
        token="123456:TEST-TOKEN",
        base_url=h.api.base_url,
        base_file_url=h.api.base_file_url,
    )
    await bot.start(poll_timeout=1)
    new = Harness(api=h.api, bot=bot, clock=clock, study=study, db_path=h.db_path)
    new.players = h.players
    for p in new.players.values():
        p.h = new
    await new.settle()
    return new


async def test_versions_are_recorded_kept_per_answer_and_exported(
    harness: Harness, study: Study, tmp_path: Path
) -> None:
    h = harness
    [v1] = await h.rows("SELECT version, sha256, source FROM study_versions")
    digest = hashlib.sha256(default_study_path().read_bytes()).hexdigest()
    assert tuple(v1) == (1, digest, "nct06438809.toml")
    p = await h.patient(501, "RP-001", lang="en")
    await h.advance(hours=1)  # 20:00 Shanghai: the Day -1 baseline diary
    await fill_diary(p, ANSWERS)

    # The study team edits the file (a compatible change): version 2 from the next start.
    changed = load_study(
        study_file(tmp_path, "v2.toml", "code_valid_hours = 336", "code_valid_hours = 335")
    )
    h = await restart(h, changed, h.clock.now())
    try:
        versions = await h.rows("SELECT version, source FROM study_versions ORDER BY version")
        assert [tuple(r) for r in versions] == [(1, "nct06438809.toml"), (2, "v2.toml")]
        entries = await h.rows(
            "SELECT actor, old_value, new_value FROM audit WHERE action = 'study_version'"
        )
        assert [(r[0], r[1]) for r in entries] == [("system", None), ("system", "1")]
        assert json.loads(entries[1][2])["version"] == 2
        await h.advance(days=1)  # Day 0 at 20:00
        await fill_diary(p, ANSWERS)
        stamped = await h.rows(
            "SELECT o.key, o.study_version, MIN(a.study_version), MAX(a.study_version)"
            " FROM occurrences o JOIN answers a ON a.occurrence_id = o.id GROUP BY o.key"
        )
        assert [tuple(r) for r in stamped] == [("baseline:-1", 1, 1, 1), ("daily:0", 2, 2, 2)]

        # ODM: one MetaDataVersion per version; each diary under the one it was asked under.
        export = await exports.run(h.db_path, changed, h.clock.now(), "odm")
        [xml] = export.files.values()
        doc = etree.fromstring(xml)
        xsd = resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
        schema = etree.XMLSchema(etree.parse(str(xsd)))
        assert schema.validate(doc), schema.error_log
        mdvs = doc.findall("odm:Study/odm:MetaDataVersion", ODM)
        assert [m.get("OID") for m in mdvs] == ["MDV.1", "MDV.2"]
        by_version = {
            cd.get("MetaDataVersionOID"): [
                ev.get("StudyEventOID") for ev in cd.iterfind(".//odm:StudyEventData", ODM)
            ]
            for cd in doc.findall("odm:ClinicalData", ODM)
        }
        assert by_version == {"MDV.1": ["SE.baseline"], "MDV.2": ["SE.daily"]}
        refs = doc.findall("odm:AdminData/odm:Location/odm:MetaDataVersionRef", ODM)
        assert [r.get("MetaDataVersionOID") for r in refs] == ["MDV.1", "MDV.2"]
    finally:
        await h.bot.stop()

    # A file that removes an option answered before: refused, the code named, nothing written.
    removed = load_study(study_file(tmp_path, "v3.toml", URGENCY_2, ""))
    audit_before = await _count(h, "SELECT COUNT(*) FROM audit")
    with pytest.raises(StudyChangeRefused, match="option 2 of item URGENCY \\(2 stored answers\\)"):
        await DiaryBot.create(db_path=h.db_path, study=removed, clock=h.clock, token="1:x")
    assert await _count(h, "SELECT COUNT(*) FROM audit") == audit_before
    assert await _count(h, "SELECT COUNT(*) FROM study_versions") == 2

    # Going back to the first file makes version 1 current again (no new version).
    bot = await DiaryBot.create(db_path=h.db_path, study=study, clock=h.clock, token="1:x")
    try:
        assert await bot.rt.db.scalar("SELECT COUNT(*) FROM study_versions") == 2
        assert await bot.rt.db.scalar("SELECT value FROM meta WHERE key = 'study_version'") == "1"
    finally:
        await bot.stop()


async def _count(h: Harness, sql: str) -> int:
    import aiosqlite

    async with aiosqlite.connect(h.db_path) as conn:
        async with conn.execute(sql) as cur:
            row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, study: Study) -> SeedFile:
    return seed_file(tmp_path_factory.mktemp("versions-seed"), study)


def test_run_refuses_a_study_file_removing_a_used_option(
    seeded: SeedFile,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "diary.sqlite3"
    shutil.copy(seeded.path, db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIARYBOT_DB", str(db))
    path = study_file(tmp_path, "s.toml", URGENCY_2, "")
    site = path.read_text(encoding="utf-8").replace(SHIPPED_PLACEHOLDER_PHONE, "+86 21 5555 0100")
    path.write_text(site, encoding="utf-8")  # the site's own phone: `run` refuses the shipped one
    monkeypatch.setenv("DIARYBOT_STUDY", str(path))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST-TOKEN")  # refused before Telegram
    monkeypatch.setenv("DIARYBOT_BACKUP_DIR", "off")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diarybot: error: study definition: s.toml removes option 2 of item")
    assert err.count("\n") == 1 and "URGENCY" in err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_removed_in_use_names_codes_and_items(study: Study) -> None:
    stored = [
        ("URGENCY", "2", 3),
        ("EVENTS", "ER,GONE", 1),
        ("EVENTS", "GONE", 2),
        ("PAIN", "7", 5),  # a scale: no option codes
        ("OLD_ITEM", "x", 1),
    ]
    assert removed_in_use(study, stored) == [
        "option GONE of item EVENTS (3 stored answers)",
        "item OLD_ITEM (1 stored answer)",
    ]
