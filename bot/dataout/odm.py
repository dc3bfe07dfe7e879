"""CDISC ODM 1.3.2 export: the study's metadata and its clinical data with the audit trail.

Pure: a `Dataset` and the study definition in, XML bytes out (standard library ElementTree;
the tests validate the result against the official ODM 1.3.2 XSD).

Shape, chosen for EDC import (REDCap, OpenClinica, Viedoc read it the same way):
- Study/MetaDataVersion from the study definition: one StudyEventDef per schedule phase
  (repeating, the repeat key is the study day, or "day@date" for a diary asked under
  an earlier Day 0 before a re-anchor), one FormDef and ItemGroupDef per diary form
  (daily, weekly: their questions differ by recall period, so their ItemDefs do too), code lists
  with English and Chinese TranslatedText.
- An extra item DIARY_STATUS per form says whether a diary was completed, missed, paused or
  withdrawn, so a missed diary is a record of its own, not an absence.
- FileType "Transactional": every audit entry about an answer (first answer, change before
  submission, removal, later correction) is one ItemData transaction in order, with its
  AuditRecord (who, where, when in the actor's local time with UTC offset, reason, and the audit
  entry id as SourceID so it can be checked against the hash chain). Earlier values stay visible.
- Multi-select answers are comma-separated codes of their code list (as OpenClinica exports
  checkbox items).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.dataout.dataset import STATUSES, AuditRec, Dataset, Diary, Subject, User
from bot.dataout.labels import (
    LANG_TAG,
    STATUS_TEXT,
    form_items,
    form_title,
    forms,
    number,
    translators,
)
from bot.domain.study import Item, Study
from bot.i18n import N_, T

NS = "http://www.cdisc.org/ns/odm/v1.3"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ET.register_namespace("", NS)

STATUS_ITEM = "DIARY_STATUS"
LOCATION_OID = "LOC.EPRO"
# A site correction signed in the console (21 CFR Part 11 §11.50: printed name, time, meaning).
CORRECTION_SIGNATURE_OID = "SIG.CORRECTION"
DATA_TYPE = {
    "single": "text",
    "multi": "text",
    "scale": "integer",
    "count": "integer",
    "number": "float",
    "text": "text",
}
USER_TYPE = {"investigator": "Investigator"}
# Audit actions that first record something (no reason for a change) and wording for the
# changes the diary itself makes; any other action (e.g. a site correction) shows its own
# reason, or its action name.
FIRST = ("answer", "diary_submitted", "diary_missed", "diary_incomplete")
REASONS = {
    "answer_changed": "changed by the patient before submitting",
    "answer_cleared": "cleared by the patient before submitting",
}


def _el(
    parent: ET.Element | None, tag: str, attrib: Mapping[str, str | None] | None = None
) -> ET.Element:
    attrs = {k: v for k, v in (attrib or {}).items() if v is not None}  # optional attributes
    if parent is None:
        return ET.Element(f"{{{NS}}}{tag}", attrs)
    return ET.SubElement(parent, f"{{{NS}}}{tag}", attrs)


def _translated(parent: ET.Element, tag: str, msgid: str, trs: list[T]) -> ET.Element:
    """<tag><TranslatedText xml:lang="en">…</TranslatedText><… xml:lang="zh-Hans">…</tag>"""
    node = _el(parent, tag)
    for tr in trs:
        text = _el(node, "TranslatedText", {XML_LANG: LANG_TAG[tr.locale]})
        text.text = tr(msgid)
    return node


def _stamp(at: datetime, tz: str) -> str:
    """Local time with its UTC offset: both the local and the UTC time in one value."""
    return at.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")


def item_oid(form: str, code: str) -> str:
    return f"IT.{form.upper()}.{code}"


def _code_list_oid(code: str) -> str:
    return f"CL.{code}"


# --------------------------------------------------------------------------- metadata


def mdv_oid(version: int) -> str:
    return f"MDV.{version}"


def _versions(ds: Dataset, study: Study) -> tuple[tuple[int, Study], ...]:
    """Every study version the data was collected under (the given study when unversioned)."""
    return ds.versions or ((1, study),)


def _current(ds: Dataset, study: Study) -> int:
    return ds.current_version or _versions(ds, study)[-1][0]


def _metadata(
    odm: ET.Element, study: Study, versions: tuple[tuple[int, Study], ...], trs: list[T]
) -> None:
    st = _el(odm, "Study", {"OID": study.id})
    gv = _el(st, "GlobalVariables")
    _el(gv, "StudyName").text = study.id
    _el(gv, "StudyDescription").text = study.title
    _el(gv, "ProtocolName").text = study.protocol
    units = sorted({it.unit for _, s in versions for it in s.items if it.unit})
    if units:
        bd = _el(st, "BasicDefinitions")
        for i, unit in enumerate(units, 1):
            mu = _el(bd, "MeasurementUnit", {"OID": f"MU.{i}", "Name": unit})
            sym = _el(mu, "Symbol")
            for tr in trs:
                _el(sym, "TranslatedText", {XML_LANG: LANG_TAG[tr.locale]}).text = unit
    unit_oid = {unit: f"MU.{i}" for i, unit in enumerate(units, 1)}
    for vnum, version in versions:
        name = f"{study.id} diary" if len(versions) == 1 else f"{study.id} diary v{vnum}"
        _metadata_version(st, version, mdv_oid(vnum), name, unit_oid, trs)


def _metadata_version(
    st: ET.Element, study: Study, oid: str, name: str, unit_oid: dict[str, str], trs: list[T]
) -> None:
    """One MetaDataVersion: what was asked under one version of the study definition."""
    mdv = _el(st, "MetaDataVersion", {"OID": oid, "Name": name})
    protocol = _el(mdv, "Protocol")
    for n, phase in enumerate(study.phases, 1):
        _el(
            protocol,
            "StudyEventRef",
            {"StudyEventOID": f"SE.{phase.code}", "OrderNumber": str(n), "Mandatory": "No"},
        )
    for phase in study.phases:
        sed = _el(
            mdv,
            "StudyEventDef",
            {
                "OID": f"SE.{phase.code}",
                "Name": phase.name,
                "Repeating": "Yes",
                "Type": "Scheduled",
            },
        )
        _translated(sed, "Description", phase.name, trs)
        _el(sed, "FormRef", {"FormOID": f"F.{phase.form}", "Mandatory": "Yes"})
    for form in forms(study):
        fd = _el(
            mdv,
            "FormDef",
            {"OID": f"F.{form}", "Name": form_title(study, form), "Repeating": "No"},
        )
        _translated(fd, "Description", form_title(study, form), trs)
        _el(fd, "ItemGroupRef", {"ItemGroupOID": f"IG.{form}", "Mandatory": "Yes"})
    for form in forms(study):
        ig = _el(
            mdv,
            "ItemGroupDef",
            {"OID": f"IG.{form}", "Name": form_title(study, form), "Repeating": "No"},
        )
        _el(
            ig,
            "ItemRef",
            {"ItemOID": item_oid(form, STATUS_ITEM), "OrderNumber": "0", "Mandatory": "Yes"},
        )
        for n, it in enumerate(form_items(study, form), 1):
            _el(
                ig,
                "ItemRef",
                {"ItemOID": item_oid(form, it.code), "OrderNumber": str(n), "Mandatory": "No"},
            )
    for form in forms(study):
        sd = _el(
            mdv,
            "ItemDef",
            {"OID": item_oid(form, STATUS_ITEM), "Name": STATUS_ITEM, "DataType": "text"},
        )
        _translated(sd, "Description", N_("Diary status"), trs)
        _el(sd, "CodeListRef", {"CodeListOID": _code_list_oid(STATUS_ITEM)})
        for it in form_items(study, form):
            _item_def(mdv, form, it, study, unit_oid, trs)
    cl = _el(
        mdv,
        "CodeList",
        {"OID": _code_list_oid(STATUS_ITEM), "Name": STATUS_ITEM, "DataType": "text"},
    )
    for status in STATUSES:
        cli = _el(cl, "CodeListItem", {"CodedValue": status})
        _translated(cli, "Decode", STATUS_TEXT[status], trs)
    for it in study.items:
        if not it.options:
            continue
        cl = _el(
            mdv, "CodeList", {"OID": _code_list_oid(it.code), "Name": it.code, "DataType": "text"}
        )
        for n, o in enumerate(it.options, 1):
            cli = _el(cl, "CodeListItem", {"CodedValue": o.code, "OrderNumber": str(n)})
            _translated(cli, "Decode", o.text, trs)


def _item_def(
    mdv: ET.Element, form: str, it: Item, study: Study, unit_oid: dict[str, str], trs: list[T]
) -> None:
    attrs = {"OID": item_oid(form, it.code), "Name": it.code, "DataType": DATA_TYPE[it.kind]}
    if it.kind == "text":
        attrs["Length"] = str(study.max_free_text)
    elif it.kind == "number":
        attrs["Length"] = "5"
        attrs["SignificantDigits"] = "1"
    elif it.kind in ("scale", "count"):
        attrs["Length"] = str(len(number(it.max)))
    idef = _el(mdv, "ItemDef", attrs)
    _translated(idef, "Description", it.short, trs)
    _translated(idef, "Question", it.question(form), trs)
    if it.unit:
        _el(idef, "MeasurementUnitRef", {"MeasurementUnitOID": unit_oid[it.unit]})
    for comparator, limit in (("GE", it.min), ("LE", it.max)):
        if limit is None:
            continue
        rc = _el(idef, "RangeCheck", {"Comparator": comparator, "SoftHard": "Hard"})
        _el(rc, "CheckValue").text = number(limit)
    if it.options:
        _el(idef, "CodeListRef", {"CodeListOID": _code_list_oid(it.code)})


def _admin(
    odm: ET.Element, study: Study, ds: Dataset, users: tuple[User, ...], created: datetime
) -> None:
    ad = _el(odm, "AdminData", {"StudyOID": study.id})
    for u in users:
        user_type = USER_TYPE.get(u.role or "", "Other") if u.kind == "staff" else None
        user = _el(ad, "User", {"OID": f"USR.{u.oid}", "UserType": user_type})
        _el(user, "LoginName").text = u.oid
        _el(user, "DisplayName").text = f"{u.oid} ({u.role or u.kind})"
    loc = _el(
        ad,
        "Location",
        {"OID": LOCATION_OID, "Name": "Patient diary (Telegram ePRO)", "LocationType": "Other"},
    )
    for vnum, _version in _versions(ds, study):
        _el(
            loc,
            "MetaDataVersionRef",
            {
                "StudyOID": study.id,
                "MetaDataVersionOID": mdv_oid(vnum),
                "EffectiveDate": created.date().isoformat(),
            },
        )
    sig = _el(ad, "SignatureDef", {"OID": CORRECTION_SIGNATURE_OID, "Methodology": "Electronic"})
    _el(sig, "Meaning").text = "correction approved"
    _el(
        sig, "LegalReason"
    ).text = "21 CFR Part 11 §11.200: signed in the study console with the signer's own password"


# --------------------------------------------------------------------------- clinical data


def _audit_record(parent: ET.Element, rec: AuditRec, tz: str) -> None:
    ar = _el(parent, "AuditRecord")
    _el(ar, "UserRef", {"UserOID": f"USR.{rec.user}"})
    _el(ar, "LocationRef", {"LocationOID": LOCATION_OID})
    _el(ar, "DateTimeStamp").text = _stamp(rec.at, tz)
    reason = rec.reason or REASONS.get(rec.action, None if rec.action in FIRST else rec.action)
    if reason:
        _el(ar, "ReasonForChange").text = reason
    _el(ar, "SourceID").text = f"audit:{rec.id}"


def _transactions(group: ET.Element, form: str, d: Diary, tz: str) -> None:
    """Every recorded change of every item, oldest first, as ItemData transactions."""
    events: list[tuple[int, str, AuditRec]] = []
    for code, recs in d.history.items():
        events.extend((rec.id, code, rec) for rec in recs)
    seen: set[str] = set()
    for _id, code, rec in sorted(events, key=lambda e: e[0]):
        attrs = {"ItemOID": item_oid(form, code)}
        if rec.new is None:
            attrs["TransactionType"] = "Remove"
            seen.discard(code)
        else:
            attrs["TransactionType"] = "Update" if code in seen else "Insert"
            attrs["Value"] = rec.new
            seen.add(code)
        item = _el(group, "ItemData", attrs)
        _audit_record(item, rec, tz)
        if rec.signed_by:
            sig = _el(item, "Signature")
            _el(sig, "UserRef", {"UserOID": f"USR.{rec.signed_by}"})
            _el(sig, "LocationRef", {"LocationOID": LOCATION_OID})
            _el(sig, "SignatureRef", {"SignatureOID": CORRECTION_SIGNATURE_OID})
            _el(sig, "DateTimeStamp").text = _stamp(rec.at, tz)
    # Answers stored without an audit entry (data loaded from elsewhere): their current value.
    for a in d.answers:
        if a.item not in d.history:
            _el(
                group,
                "ItemData",
                {"ItemOID": item_oid(form, a.item), "TransactionType": "Insert", "Value": a.value},
            )


def _clinical(odm: ET.Element, ds: Dataset, study: Study) -> None:
    """One ClinicalData per study version: each diary under the version it was submitted under
    (diaries not submitted, and subjects without diaries, under the running version)."""
    current = _current(ds, study)
    for vnum, _version in _versions(ds, study):
        chosen = [
            (s, [d for d in s.diaries if (d.study_version or current) == vnum]) for s in ds.subjects
        ]
        chosen = [(s, ds_) for s, ds_ in chosen if ds_ or (vnum == current and not s.diaries)]
        if not chosen and vnum != current:
            continue
        cd = _el(odm, "ClinicalData", {"StudyOID": study.id, "MetaDataVersionOID": mdv_oid(vnum)})
        for s, diaries in chosen:
            _subject_data(cd, s, diaries)


def _subject_data(cd: ET.Element, s: Subject, diaries: list[Diary]) -> None:
    sd = _el(cd, "SubjectData", {"SubjectKey": s.subject, "TransactionType": "Upsert"})
    for d in diaries:
        se = _el(
            sd,
            "StudyEventData",
            {
                "StudyEventOID": f"SE.{d.phase}",
                "StudyEventRepeatKey": d.instance,
                "TransactionType": "Upsert",
            },
        )
        fd = _el(se, "FormData", {"FormOID": f"F.{d.form}", "TransactionType": "Upsert"})
        ig = _el(fd, "ItemGroupData", {"ItemGroupOID": f"IG.{d.form}", "TransactionType": "Upsert"})
        if d.status in ("completed", "incomplete"):
            _transactions(ig, d.form, d, s.timezone)
        status = _el(
            ig,
            "ItemData",
            {
                "ItemOID": item_oid(d.form, STATUS_ITEM),
                "TransactionType": "Upsert",
                "Value": d.status,
            },
        )
        if d.status_audit is not None:
            _audit_record(status, d.status_audit, s.timezone)


def build(ds: Dataset, study: Study) -> bytes:
    trs = translators()
    created = ds.created_at
    odm = _el(
        None,
        "ODM",
        {
            "FileType": "Transactional",
            "FileOID": f"{study.id}.{created.strftime('%Y%m%dT%H%M%SZ')}",
            "CreationDateTime": created.isoformat(timespec="seconds"),
            "ODMVersion": "1.3.2",
            "Originator": "diarybot",
            "SourceSystem": "diarybot",
            "Description": f"{study.id} ({study.protocol}) patient diary export",
        },
    )
    _metadata(odm, study, _versions(ds, study), trs)
    _admin(odm, study, ds, ds.users, created)
    _clinical(odm, ds, study)
    ET.indent(odm, space=" ")
    return ET.tostring(odm, encoding="utf-8", xml_declaration=True)
