"""Exports of a seeded multi-patient history, checked by third-party validators.

CSV: long and wide files show missed and paused diaries as such; the data dictionary rebuilds
the study definition exactly. ODM 1.3.2: valid against the official XSD shipped by `odmlib`,
with the audit trail as transactions. FHIR R4B: every resource valid for `fhir.resources`.
No export contains a Telegram id, a staff name or an enrolment code.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import shutil
import sqlite3
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from lxml import etree

from bot.cli import main
from bot.dataout import exports
from bot.dataout.labels import form_items
from bot.domain.study import Condition, Item, Option, Study
from bot.i18n import t
from tests.dataout_seed import CORRECTION, SeedFile, seed_file

ODM = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, study: Study) -> SeedFile:
    return seed_file(tmp_path_factory.mktemp("export-seed"), study)


@pytest.fixture(scope="module")
def files(seeded: SeedFile, study: Study) -> dict[str, dict[str, bytes]]:
    async def run() -> dict[str, dict[str, bytes]]:
        out = {}
        for fmt in exports.FORMATS:
            export = await exports.run(seeded.path, study, seeded.now, fmt)
            out[fmt] = export.files
        return out

    return asyncio.run(run())


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM, so Excel shows Chinese"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def csv_file(files: dict[str, dict[str, bytes]], kind: str) -> list[dict[str, str]]:
    return read_csv(files["csv"][f"NCT06438809_{kind}.csv"])


def one(files: dict[str, dict[str, bytes]], fmt: str) -> bytes:
    assert len(files[fmt]) == 1
    return next(iter(files[fmt].values()))


def odm_schema() -> etree.XMLSchema:
    xsd = resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    return etree.XMLSchema(etree.parse(str(xsd)))


# ------------------------------------------------------------------------------------ CSV


def test_long_csv_has_every_answer_and_missed_and_paused_diaries(
    files: dict[str, dict[str, bytes]], seeded: SeedFile
) -> None:
    rows = csv_file(files, "long")
    with sqlite3.connect(seeded.path) as conn:
        submitted = conn.execute("SELECT COUNT(*) FROM answers WHERE submitted_at IS NOT NULL")
        assert sum(1 for r in rows if r["item"]) == submitted.fetchone()[0]
    status = {(r["subject"], r["occurrence"]): r["status"] for r in rows if not r["item"]}
    assert status == {
        ("RP-001", "daily:2"): "missed",
        ("RP-001", "daily:3"): "missed",
        ("RP-001", "daily:5"): "paused",
        ("RP-002", "daily:1"): "missed",
    }
    pain = next(r for r in rows if r["subject"] == "RP-003" and r["occurrence"] == "daily:0"
                and r["item"] == "PAIN")  # fmt: skip
    assert (pain["value_code"], pain["study_day"], pain["phase"]) == ("1", "0", "daily")
    assert pain["local_date"] == "2026-12-03" and pain["submitted_at"].endswith("Z")
    events = next(r for r in rows if r["item"] == "EVENTS" and "," in r["value_code"])
    assert events["value"] == "Emergency department visit; Another new medicine for bowel symptoms"
    temp = next(r for r in rows if r["item"] == "TEMP")
    assert temp["value_code"] == "38.4"  # typed as "38,4"


def test_wide_csv_is_one_row_per_diary(files: dict[str, dict[str, bytes]], study: Study) -> None:
    rows = csv_file(files, "wide")
    keys = [(r["subject"], r["occurrence"]) for r in rows]
    assert len(set(keys)) == len(keys) == 33
    assert set(keys) == {(r["subject"], r["occurrence"]) for r in csv_file(files, "long")}
    order = [(r["subject"], int(r["study_day"])) for r in rows]
    assert order == sorted(order)
    assert list(rows[0])[-len(study.items) :] == [it.code for it in study.items]
    missed = next(r for r in rows if r["subject"] == "RP-002" and r["occurrence"] == "daily:1")
    assert missed["status"] == "missed" and missed["BLEED"] == "" and missed["submitted_at"] == ""
    dropped = next(r for r in rows if r["subject"] == "RP-003" and r["occurrence"] == "daily:0")
    assert (dropped["BLEED"], dropped["BLEED_FAINT"]) == ("0", "")  # dropped at submission


def _number(text: str) -> float | None:
    return float(text) if text else None


def _codes(text: str) -> tuple[str, ...]:
    return tuple(text.split("|")) if text else ()


def test_data_dictionary_round_trips_to_the_study_definition(
    files: dict[str, dict[str, bytes]], study: Study
) -> None:
    rows = csv_file(files, "dictionary")
    zh = t("zh_Hans")
    rebuilt: list[Item] = []
    for code in dict.fromkeys(r["item"] for r in rows):
        group = [r for r in rows if r["item"] == code]
        r = group[0]
        show_if = None
        if r["show_if_item"]:
            show_if = Condition(
                item=r["show_if_item"],
                in_=_codes(r["show_if_in"]),
                any_=_codes(r["show_if_any"]),
                gte=_number(r["show_if_gte"]),
                lt=_number(r["show_if_lt"]),
            )
        options = tuple(
            Option(g["option_code"], float(g["option_value"]), g["option_en"],
                   g["option_exclusive"] == "1")
            for g in group if g["option_code"]
        )  # fmt: skip
        rebuilt.append(
            Item(
                code=code,
                kind=r["kind"],
                short=r["short_en"],
                text=r["question_en"],
                weekly_text=r["weekly_question_en"] or None,
                options=options,
                min=_number(r["min"]),
                max=_number(r["max"]),
                unit=r["unit"] or None,
                days=(int(r["first_day"]), int(r["last_day"])) if r["first_day"] else None,
                show_if=show_if,
            )
        )
        # The Chinese columns are the catalog's translation of each English msgid.
        item = study.item(code)
        assert r["short_zh"] == zh(item.short) and r["question_zh"] == zh(item.text)
        for g, o in zip([g for g in group if g["option_code"]], item.options, strict=True):
            assert g["option_zh"] == zh(o.text)
    assert tuple(rebuilt) == study.items
    assert next(r["forms"] for r in rows if r["item"] == "FEVER") == "daily|weekly"
    assert next(r["forms"] for r in rows if r["item"] == "BLEED_DAYS") == "weekly"
    assert next(r["forms"] for r in rows if r["item"] == "COMPL") == "daily|weekly"
    assert next(r["forms"] for r in rows if r["item"] == "BLEED") == "daily|weekly"


# ------------------------------------------------------------------------------------ ODM


def test_odm_is_valid_against_the_official_xsd(files: dict[str, dict[str, bytes]]) -> None:
    schema = odm_schema()
    doc = etree.fromstring(one(files, "odm"))
    assert schema.validate(doc), schema.error_log
    assert doc.get("ODMVersion") == "1.3.2" and doc.get("FileType") == "Transactional"


def test_odm_metadata_is_built_from_the_study_definition_in_both_languages(
    files: dict[str, dict[str, bytes]], study: Study
) -> None:
    doc = etree.fromstring(one(files, "odm"))
    zh = t("zh_Hans")
    mdv = doc.find("odm:Study/odm:MetaDataVersion", ODM)
    assert mdv is not None
    defs = {d.get("OID"): d for d in mdv.findall("odm:ItemDef", ODM)}
    for form in ("daily", "weekly"):
        group = mdv.find(f"odm:ItemGroupDef[@OID='IG.{form}']", ODM)
        assert group is not None
        refs = [r.get("ItemOID") for r in group.findall("odm:ItemRef", ODM)]
        expected = [f"IT.{form.upper()}.{it.code}" for it in form_items(study, form)]
        assert refs == [f"IT.{form.upper()}.DIARY_STATUS", *expected]
    bleed = defs["IT.WEEKLY.BLEED"]
    texts = {
        tt.get(XML_LANG): tt.text for tt in bleed.findall("odm:Question/odm:TranslatedText", ODM)
    }
    weekly_text = study.item("BLEED").weekly_text
    assert weekly_text is not None
    assert texts == {"en": weekly_text, "zh-Hans": zh(weekly_text)}
    code_list = mdv.find("odm:CodeList[@OID='CL.URGENCY']", ODM)
    assert code_list is not None
    items = code_list.findall("odm:CodeListItem", ODM)
    assert [i.get("CodedValue") for i in items] == ["0", "1", "2", "3", "4"]
    decode = items[3].findall("odm:Decode/odm:TranslatedText", ODM)
    assert [(d.get(XML_LANG), d.text) for d in decode] == [
        ("en", "Severe"),
        ("zh-Hans", zh("Severe")),
    ]
    pain = defs["IT.DAILY.PAIN"]
    checks = [(c.get("Comparator"), c.findtext("odm:CheckValue", namespaces=ODM))
              for c in pain.findall("odm:RangeCheck", ODM)]  # fmt: skip
    assert checks == [("GE", "0"), ("LE", "10")]
    assert defs["IT.DAILY.TEMP"].find("odm:MeasurementUnitRef", ODM) is not None


def test_odm_clinical_data_keeps_every_value_with_its_audit_record(
    files: dict[str, dict[str, bytes]], seeded: SeedFile
) -> None:
    doc = etree.fromstring(one(files, "odm"))
    subjects = doc.findall("odm:ClinicalData/odm:SubjectData", ODM)
    assert [s.get("SubjectKey") for s in subjects] == ["RP-001", "RP-002", "RP-003"]

    def event(subject: str, phase: str, day: int) -> etree._Element:
        found = doc.find(
            f"odm:ClinicalData/odm:SubjectData[@SubjectKey='{subject}']/odm:StudyEventData"
            f"[@StudyEventOID='SE.{phase}'][@StudyEventRepeatKey='{day}']",
            ODM,
        )
        assert found is not None, (subject, phase, day)
        return found

    def item_data(ev: etree._Element) -> list[tuple[str, str | None, str | None]]:
        return [
            (i.get("ItemOID"), i.get("TransactionType"), i.get("Value"))
            for i in ev.findall("odm:FormData/odm:ItemGroupData/odm:ItemData", ODM)
        ]

    missed = item_data(event("RP-001", "daily", 2))
    assert missed == [("IT.DAILY.DIARY_STATUS", "Upsert", "missed")]
    assert item_data(event("RP-001", "daily", 5)) == [("IT.DAILY.DIARY_STATUS", "Upsert", "paused")]
    assert item_data(event("RP-003", "baseline", -5))[0][0] == "IT.DAILY.BLEED"
    # Changed on the review screen: the first and the final value both stay visible, and the
    # follow-up dropped at submission is a Remove transaction.
    changed = item_data(event("RP-003", "daily", 0))
    assert [v for v in changed if v[0] == "IT.DAILY.BLEED"] == [
        ("IT.DAILY.BLEED", "Insert", "3"),
        ("IT.DAILY.BLEED", "Update", "0"),
    ]
    assert ("IT.DAILY.BLEED_FAINT", "Remove", None) in changed
    assert changed[-1] == ("IT.DAILY.DIARY_STATUS", "Upsert", "completed")
    record = event("RP-003", "daily", 0).find(
        "odm:FormData/odm:ItemGroupData/odm:ItemData[@ItemOID='IT.DAILY.PAIN']"
        "[@TransactionType='Update']/odm:AuditRecord",
        ODM,
    )
    assert record is not None
    assert record.find("odm:UserRef", ODM).get("UserOID") == "USR.RP-003"
    assert record.findtext("odm:DateTimeStamp", namespaces=ODM) == "2026-12-03T20:30:00+08:00"
    assert record.findtext("odm:ReasonForChange", namespaces=ODM) == (
        "changed by the patient before submitting"
    )
    source = record.findtext("odm:SourceID", namespaces=ODM)
    assert source is not None and source.startswith("audit:")
    with sqlite3.connect(seeded.path) as conn:
        entry = conn.execute(
            "SELECT action, entity, new_value FROM audit WHERE id = ?", (int(source[6:]),)
        ).fetchone()
    assert entry == ("answer_changed", "daily:0/PAIN", "1")
    # A site correction after submission: an Update by the CLI user, with the site's reason.
    subject, day, item, value, reason = CORRECTION
    corrected = event(subject, "daily", day).find(
        f"odm:FormData/odm:ItemGroupData/odm:ItemData[@ItemOID='IT.DAILY.{item}']"
        f"[@TransactionType='Update'][@Value='{value}']/odm:AuditRecord",
        ODM,
    )
    assert corrected is not None
    assert corrected.find("odm:UserRef", ODM).get("UserOID") == "USR.cli"
    assert corrected.findtext("odm:ReasonForChange", namespaces=ODM) == reason
    users = [u.get("OID") for u in doc.findall("odm:AdminData/odm:User", ODM)]
    assert {"USR.RP-001", "USR.STAFF-01", "USR.STAFF-02", "USR.system"} <= set(users)


# ------------------------------------------------------------------------------------ FHIR


def test_fhir_bundle_is_valid_r4b(
    files: dict[str, dict[str, bytes]], study: Study, seeded: SeedFile
) -> None:
    raw = json.loads(one(files, "fhir"))
    bundle = Bundle.model_validate(raw)
    assert bundle.type == "collection"
    resources_ = [e["resource"] for e in raw["entry"]]
    questionnaires = [r for r in resources_ if r["resourceType"] == "Questionnaire"]
    responses = [r for r in resources_ if r["resourceType"] == "QuestionnaireResponse"]
    for r in questionnaires:
        Questionnaire.model_validate(r)
    for r in responses:
        QuestionnaireResponse.model_validate(r)
    assert [q["id"] for q in questionnaires] == ["NCT06438809-daily", "NCT06438809-weekly"]
    for q in questionnaires:
        form = q["id"].split("-")[-1]
        assert [i["linkId"] for i in q["item"]] == [it.code for it in form_items(study, form)]
    with sqlite3.connect(seeded.path) as conn:
        completed = conn.execute("SELECT COUNT(*) FROM occurrences WHERE status = 'completed'")
        assert len(responses) == completed.fetchone()[0]
    assert all(r["authored"].endswith("Z") for r in responses)
    # completed, except the one diary the site corrected after submission: amended
    subject, day, item, value, _ = CORRECTION
    amended = [r for r in responses if r["status"] == "amended"]
    assert [r["identifier"]["value"] for r in amended] == [f"{subject}/daily:{day}"]
    assert all(r["status"] == "completed" for r in responses if r not in amended)
    [pain] = [i for i in amended[0]["item"] if i["linkId"] == item]
    assert pain["answer"] == [{"valueInteger": int(value)}]
    url = {q["id"].split("-")[-1]: q["url"] for q in questionnaires}
    assert all(r["questionnaire"] == url["daily"] for r in responses)


def test_fhir_texts_are_bilingual_and_answers_coded(
    files: dict[str, dict[str, bytes]], study: Study
) -> None:
    raw = json.loads(one(files, "fhir"))
    zh = t("zh_Hans")
    daily = raw["entry"][0]["resource"]
    bleed = next(i for i in daily["item"] if i["linkId"] == "BLEED")
    assert bleed["text"] == study.item("BLEED").text
    translation = bleed["_text"]["extension"][0]
    assert translation["url"] == TRANSLATION
    assert translation["extension"] == [
        {"url": "lang", "valueCode": "zh-Hans"},
        {"url": "content", "valueString": zh(study.item("BLEED").text)},
    ]
    faint = next(i for i in daily["item"] if i["linkId"] == "BLEED_FAINT")
    assert faint["enableWhen"][0]["question"] == "BLEED"
    # asked after any visible blood: options 2 and 3
    assert [w["answerCoding"]["code"] for w in faint["enableWhen"]] == ["2", "3"]
    events = next(i for i in daily["item"] if i["linkId"] == "EVENTS")
    assert events["repeats"] is True and events["type"] == "choice"
    response = next(
        e["resource"]
        for e in raw["entry"]
        if e["resource"].get("identifier", {}).get("value") == "RP-003/daily:1"
    )
    assert response["subject"]["identifier"]["value"] == "RP-003"
    assert response["language"] == "zh-Hans"
    answers = {i["linkId"]: i["answer"] for i in response["item"]}
    assert answers["TEMP"] == [{"valueDecimal": 38.4}]
    assert answers["PAIN"] == [{"valueInteger": 1}]
    coding = answers["FEVER"][0]["valueCoding"]
    assert (coding["code"], coding["display"]) == ("Y", "Yes")
    assert coding["_display"]["extension"][0]["extension"][1]["valueString"] == zh("Yes")


# ------------------------------------------------------------------------------- privacy


def test_no_export_contains_telegram_ids_staff_names_or_codes(
    files: dict[str, dict[str, bytes]], seeded: SeedFile
) -> None:
    secrets = [
        *[str(i) for i in seeded.user_ids],
        *[str(i) for i in seeded.staff_ids],
        *seeded.staff_names,
        *seeded.codes,
        "staff:",
        "chat:",
    ]
    assert all(len(code) >= 6 for code in seeded.codes)
    for fmt, contents in files.items():
        for name, data in contents.items():
            text = data.decode("utf-8-sig")
            for secret in secrets:
                assert secret not in text, (fmt, name, secret)


# ------------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_db(seeded: SeedFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "diary.sqlite3"
    shutil.copy(seeded.path, path)
    monkeypatch.setenv("DIARYBOT_DB", str(path))
    monkeypatch.delenv("DIARYBOT_STUDY", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


def test_cli_export_writes_the_files_and_audits_them(
    cli_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "csv-out"
    assert main(["export", "--format", "csv", "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "NCT06438809_dictionary.csv",
        "NCT06438809_long.csv",
        "NCT06438809_wide.csv",
    ]
    wide = read_csv((out / "NCT06438809_wide.csv").read_bytes())
    assert f"csv export: 3 subjects, {len(wide)} diaries" in capsys.readouterr().out
    with sqlite3.connect(cli_db) as conn:
        actor, new = conn.execute(
            "SELECT actor, new_value FROM audit WHERE action = 'export'"
        ).fetchone()
    assert actor == "cli"

    digests = json.loads(new)["sha256"]
    assert digests == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    assert main(["audit", "verify"]) == 0


def test_cli_export_one_subject_since_a_date(
    cli_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "odm.zip"
    args = ["export", "--format", "odm", "--out", str(out), "--subject", "RP-002"]
    assert main([*args, "--since", "2026-12-05"]) == 0
    with zipfile.ZipFile(out) as zf:
        (name,) = zf.namelist()
        doc = etree.fromstring(zf.read(name))
    assert odm_schema().validate(doc)
    keys = [
        (e.getparent().get("SubjectKey"), e.get("StudyEventRepeatKey"))
        for e in doc.findall("odm:ClinicalData/odm:SubjectData/odm:StudyEventData", ODM)
    ]
    assert keys == [("RP-002", str(day)) for day in (5, 6, 7, 8)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subject", "RP-404"], "no subject 'RP-404'"),
        (["--since", "2026-13-01"], "bad date '2026-13-01'"),
        (["--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_cli_export_refusals_write_nothing(
    cli_db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "never"
    base = ["export", "--out", str(out)]
    if "--format" not in args:
        base += ["--format", "fhir"]
    with sqlite3.connect(cli_db) as conn:
        before = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    try:
        code = main([*base, *args])
    except SystemExit as exc:  # argparse refusals
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    with sqlite3.connect(cli_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == before
