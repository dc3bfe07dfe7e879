"""Shared vocabulary of the export formats: languages, decoded values, which items a form has.

Pure: study definition and translators in, strings out. Every format (CSV, ODM, FHIR) decodes
the same way, so the three files never disagree about what an answer means.
"""

from __future__ import annotations

from bot.domain.study import Item, Study
from bot.i18n import LOCALES, N_, T, t

# Our locale → the BCP 47 tag the export formats use (xml:lang, FHIR language).
LANG_TAG = {"en": "en", "zh_Hans": "zh-Hans"}
SOURCE_LOCALE = "en"  # msgids are English: the base language of every export

STATUS_TEXT = {
    "completed": N_("Completed"),
    "incomplete": N_("Incomplete (closed without Submit; answers so far)"),
    "missed": N_("Missed"),
    "paused": N_("Paused"),
    "withdrawn": N_("Withdrawn"),
    "open": N_("Open (not closed yet)"),
}


def translators() -> list[T]:
    """One translator per study language, English (the source) first."""
    return [t(loc) for loc in sorted(LOCALES, key=lambda loc: loc != SOURCE_LOCALE)]


def item_forms(study: Study, item: Item) -> tuple[str, ...]:
    """The forms (daily, weekly) whose phases include at least one day the item is asked on."""
    forms: list[str] = []
    for phase in study.phases:
        lo, hi = phase.first_day, min(phase.last_day, study.closing_day)
        if item.days is not None and (item.days[1] < lo or item.days[0] > hi):
            continue
        if phase.form not in forms:
            forms.append(phase.form)
    return tuple(forms)


def form_items(study: Study, form: str) -> list[Item]:
    return [it for it in study.items if form in item_forms(study, it)]


def forms(study: Study) -> list[str]:
    out: list[str] = []
    for phase in study.phases:
        if phase.form not in out:
            out.append(phase.form)
    return out


def form_title(study: Study, form: str) -> str:
    """A form's name: that of the phase named like the form ("Daily diary"), else the first."""
    named = [p for p in study.phases if p.form == form and p.code == form]
    return (named or [p for p in study.phases if p.form == form])[0].name


def codes(raw: str) -> list[str]:
    return [c for c in raw.split(",") if c]


def decode(item: Item, raw: str, _: T) -> str:
    """An answer as a reader sees it: option texts for coded items, the value otherwise."""
    if item.kind in ("single", "multi"):
        texts = []
        for code in codes(raw):
            option = item.option(code)
            texts.append(_(option.text) if option else code)
        return "; ".join(texts)
    if item.kind == "count" and item.max is not None and raw == f"{item.max:g}":
        return f"{raw}+"
    return raw


def number(value: float | None) -> str:
    """A study-file number as text: 10 rather than 10.0, 35.5 stays 35.5."""
    return "" if value is None else f"{value:g}"
