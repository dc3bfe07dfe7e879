"""FHIR export: a Questionnaire per diary form and a QuestionnaireResponse per submitted diary.

FHIR version: R4B (4.3). Questionnaire and QuestionnaireResponse are identical in R4 and R4B,
and R4 is what hospital and sponsor FHIR servers run today (HAPI, Azure, Google, the Chinese
hospital platforms); R5 changed both resources (answerConstraint, the "coding" item type) and
few servers accept it yet. The tests validate every resource with `fhir.resources.R4B`.

One JSON file: a Bundle of type "collection" holding the Questionnaires first, then the
responses. English is the base language (the study file's texts are English msgids); Chinese
travels in the standard translation extension on every text, title and option display.
Subjects appear by study subject ID only (an identifier, not a reference to a Patient resource
with personal data). Submitted diaries have a response, and so do incomplete ones (closed
without Submit: status "stopped", the answers given so far); missed, paused or withdrawn
diaries are in the CSV and ODM exports with their status.

Pure: a `Dataset` and the study definition in, JSON bytes out.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

from bot.dataout.dataset import Dataset, Diary, Subject
from bot.dataout.labels import LANG_TAG, form_items, form_title, forms, translators
from bot.domain.study import Condition, Item, Study
from bot.i18n import T

TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
OPTION_EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
UCUM = {"°C": "Cel"}


def base(study: Study) -> str:
    """Namespace of our identifiers and canonical URLs: a URN, no server needed to resolve."""
    return f"urn:diarybot:{study.id}"


def questionnaire_url(study: Study, form: str) -> str:
    return f"{base(study)}:Questionnaire:{form}"


def code_system(study: Study, item: str) -> str:
    return f"{base(study)}:CodeSystem:{item}"


def _id(text: str) -> str:
    """A FHIR id: [A-Za-z0-9-.]{1,64}."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:64]


def _uuid(study: Study, name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{base(study)}:{name}')}"


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _translations(msgid: str, trs: list[T]) -> dict[str, Any]:
    """The `_element` companion carrying the other languages of a text."""
    return {
        "extension": [
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": LANG_TAG[tr.locale]},
                    {"url": "content", "valueString": tr(msgid)},
                ],
            }
            for tr in trs[1:]
        ]
    }


def _coding(study: Study, item: Item, code: str, trs: list[T]) -> dict[str, Any]:
    option = item.option(code)
    coding: dict[str, Any] = {"system": code_system(study, item.code), "code": code}
    if option is not None:
        coding["display"] = trs[0](option.text)
        coding["_display"] = _translations(option.text, trs)
    return coding


def _enable_when(study: Study, cond: Condition) -> list[dict[str, Any]]:
    dep = study.item(cond.item)
    out: list[dict[str, Any]] = []
    for code in (*cond.in_, *cond.any_):
        out.append(
            {
                "question": cond.item,
                "operator": "=",
                "answerCoding": {"system": code_system(study, dep.code), "code": code},
            }
        )
    for operator, limit in ((">=", cond.gte), ("<", cond.lt)):
        if limit is not None:
            out.append({"question": cond.item, "operator": operator, "answerDecimal": limit})
    return out


def _q_item(study: Study, form: str, it: Item, trs: list[T]) -> dict[str, Any]:
    text = it.question(form)
    node: dict[str, Any] = {
        "linkId": it.code,
        "prefix": it.code,
        "text": trs[0](text),
        "_text": _translations(text, trs),
    }
    extensions: list[dict[str, Any]] = []
    if it.kind in ("single", "multi"):
        node["type"] = "choice"
        options = []
        for o in it.options:
            option: dict[str, Any] = {"valueCoding": _coding(study, it, o.code, trs)}
            if o.exclusive:
                option["extension"] = [{"url": OPTION_EXCLUSIVE, "valueBoolean": True}]
            options.append(option)
        node["answerOption"] = options
        if it.kind == "multi":
            node["repeats"] = True
    elif it.kind in ("scale", "count"):
        node["type"] = "integer"
        extensions += [
            {"url": MIN_VALUE, "valueInteger": int(it.min or 0)},
            {"url": MAX_VALUE, "valueInteger": int(it.max or 0)},
        ]
    elif it.kind == "number":
        node["type"] = "decimal"
        extensions += [
            {"url": MIN_VALUE, "valueDecimal": it.min},
            {"url": MAX_VALUE, "valueDecimal": it.max},
        ]
        if it.unit:
            unit: dict[str, Any] = {"display": it.unit}
            if it.unit in UCUM:
                unit = {"system": "http://unitsofmeasure.org", "code": UCUM[it.unit], **unit}
            extensions.append({"url": UNIT, "valueCoding": unit})
    else:
        node["type"] = "text"
        node["maxLength"] = study.max_free_text
    if extensions:
        node["extension"] = extensions
    if it.show_if is not None:
        node["enableWhen"] = _enable_when(study, it.show_if)
        if len(node["enableWhen"]) > 1:
            node["enableBehavior"] = "any"
    node["required"] = it.show_if is None and it.days is None
    return node


def questionnaire(study: Study, form: str, created: datetime, trs: list[T]) -> dict[str, Any]:
    title = form_title(study, form)
    return {
        "resourceType": "Questionnaire",
        "id": _id(f"{study.id}-{form}"),
        "url": questionnaire_url(study, form),
        "name": re.sub(r"[^A-Za-z0-9_]", "_", f"{study.id}_{form}"),
        "title": trs[0](title),
        "_title": _translations(title, trs),
        "status": "active",
        "language": LANG_TAG[trs[0].locale],
        "subjectType": ["Patient"],
        "date": _ts(created),
        "item": [_q_item(study, form, it, trs) for it in form_items(study, form)],
    }


def _answers(study: Study, item: Item, raw: str, trs: list[T]) -> list[dict[str, Any]]:
    if item.kind in ("single", "multi"):
        return [{"valueCoding": _coding(study, item, c, trs)} for c in raw.split(",") if c]
    if item.kind in ("scale", "count"):
        return [{"valueInteger": int(raw)}]
    if item.kind == "number":
        return [{"valueDecimal": float(raw)}]
    return [{"valueString": raw}]


def response(study: Study, s: Subject, d: Diary, trs: list[T]) -> dict[str, Any]:
    subject_ref = {
        "type": "Patient",
        "identifier": {"system": f"{base(study)}:subject", "value": s.subject},
        "display": s.subject,
    }
    items = []
    for a in d.answers:
        item = study.item(a.item)
        text = item.question(d.form)
        items.append(
            {
                "linkId": item.code,
                "text": trs[0](text),
                "_text": _translations(text, trs),
                "answer": _answers(study, item, a.value, trs),
            }
        )
    node: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": _id(f"{s.subject}-{d.phase}-{d.instance}"),
        "identifier": {"system": f"{base(study)}:diary", "value": f"{s.subject}/{d.key}"},
        "questionnaire": questionnaire_url(study, d.form),
        # "amended": an answer was corrected after submission (the audit trail says how)
        # "stopped": closed without Submit; the answers given so far (status incomplete)
        "status": "stopped"
        if d.status == "incomplete"
        else ("amended" if _corrected(d) else "completed"),
        "subject": subject_ref,
        "source": subject_ref,
        "item": items,
    }
    if s.lang in LANG_TAG:
        node["language"] = LANG_TAG[s.lang]
    if d.submitted_at is not None:
        node["authored"] = _ts(d.submitted_at)
    return node


def _corrected(d: Diary) -> bool:
    return any(r.action == "answer_corrected" for recs in d.history.values() for r in recs)


def build(ds: Dataset, study: Study) -> bytes:
    trs = translators()
    resources: list[dict[str, Any]] = [
        questionnaire(study, form, ds.created_at, trs) for form in forms(study)
    ]
    for s in ds.subjects:
        for d in s.diaries:
            if d.status in ("completed", "incomplete"):
                resources.append(response(study, s, d, trs))
    bundle = {
        "resourceType": "Bundle",
        "id": _id(f"{study.id}-{ds.created_at.strftime('%Y%m%dT%H%M%SZ')}"),
        "identifier": {
            "system": f"{base(study)}:export",
            "value": ds.created_at.strftime("%Y%m%dT%H%M%SZ"),
        },
        "type": "collection",
        "timestamp": _ts(ds.created_at),
        "entry": [
            {"fullUrl": _uuid(study, f"{r['resourceType']}/{r['id']}"), "resource": r}
            for r in resources
        ],
    }
    # Compact: the C encoder (indent= falls back to pure Python, ten times slower).
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
