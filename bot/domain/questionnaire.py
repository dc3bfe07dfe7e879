"""Which question comes next, and whether an answer is acceptable. Pure.

Answers are `dict[item code, raw string]` (the project-wide convention): single → option code,
multi → option codes joined by ",", scale/count/number → decimal text, text → the text.
The flow is derived, not stored: the next question is always the first applicable item without
an answer, so changing an answer on the review screen (e.g. bleeding from "none" to "clots")
naturally asks the follow-up that now applies, and drops the one that no longer does.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from decimal import Decimal

from bot.domain.study import Condition, Item, Study
from bot.domain.textsafety import has_xml_forbidden


class InputError(ValueError):
    """A typed answer was refused. `code` selects the localized explanation."""

    def __init__(self, code: str, item: Item) -> None:
        super().__init__(code)
        self.code = code
        self.item = item


def condition_holds(cond: Condition, answers: Mapping[str, str]) -> bool:
    raw = answers.get(cond.item)
    if raw is None:
        return False
    if cond.in_ and raw not in cond.in_:
        return False
    return not (cond.any_ and not set(raw.split(",")) & set(cond.any_))


def applicable(item: Item, study_day: int, answers: Mapping[str, str]) -> bool:
    if item.days is not None and not item.days[0] <= study_day <= item.days[1]:
        return False
    return item.show_if is None or condition_holds(item.show_if, answers)


def applicable_items(study: Study, study_day: int, answers: Mapping[str, str]) -> list[Item]:
    return [it for it in study.items if applicable(it, study_day, answers)]


def next_item(study: Study, study_day: int, answers: Mapping[str, str]) -> Item | None:
    """The first applicable item still unanswered; None means: show the review screen."""
    for it in applicable_items(study, study_day, answers):
        if it.code not in answers:
            return it
    return None


def progress(
    study: Study, study_day: int, answers: Mapping[str, str], item: Item
) -> tuple[int, int]:
    """(position of item, number of applicable items) for "Question 3 of 10"."""
    items = applicable_items(study, study_day, {**answers, item.code: answers.get(item.code, "")})
    codes = [it.code for it in items]
    pos = codes.index(item.code) + 1 if item.code in codes else len(codes)
    return pos, len(codes)


def clean(study: Study, study_day: int, answers: Mapping[str, str]) -> dict[str, str]:
    """Only the answers to items that apply, in questionnaire order (what gets submitted)."""
    return {
        it.code: answers[it.code]
        for it in applicable_items(study, study_day, answers)
        if it.code in answers
    }


def no_longer_applying(study: Study, study_day: int, answers: Mapping[str, str]) -> dict[str, str]:
    """The answers that `clean` leaves out: follow-ups whose question no longer applies (e.g.
    the temperature after the fever answer became "no"), which Submit, closing unsubmitted and
    a site correction drop."""
    kept = clean(study, study_day, answers)
    return {code: value for code, value in answers.items() if code not in kept}


def is_complete(study: Study, study_day: int, answers: Mapping[str, str]) -> bool:
    return next_item(study, study_day, answers) is None


def button_values(item: Item) -> list[str]:
    """Codes a button may carry for this item."""
    if item.kind in ("single", "multi"):
        return [o.code for o in item.options]
    if item.kind in ("scale", "count"):
        assert item.min is not None and item.max is not None
        return [str(v) for v in range(int(item.min), int(item.max) + 1)]
    return []


def accept_button(item: Item, code: str) -> str:
    """Validate a button's code (callback data can be forged). Returns the raw answer."""
    if code not in button_values(item):
        raise InputError("bad_button", item)
    return code


def toggle(item: Item, current: str | None, code: str) -> str:
    """Multi-select: flip one option; an exclusive option ("None of these") clears the others."""
    accept_button(item, code)
    chosen = [c for c in (current or "").split(",") if c]
    opt = item.option(code)
    assert opt is not None
    if code in chosen:
        chosen.remove(code)
    elif opt.exclusive:
        chosen = [code]
    else:
        exclusive = {o.code for o in item.options if o.exclusive}
        chosen = [c for c in chosen if c not in exclusive] + [code]
    order = [o.code for o in item.options]
    return ",".join(sorted(chosen, key=order.index))


# Units people type after a temperature (after NFKC, "℃" is "°C" and full-width letters are ASCII).
_TEMPERATURE_UNITS = ("摄氏度", "°c", "度", "°", "c")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
ONE_DECIMAL = Decimal("0.1")


def parse_number(text: str, unit: str | None = None) -> Decimal:
    """The number someone typed, exactly as typed: no rounding. Pure, for every channel.

    Accepts a decimal comma (``38,5``), full-width digits and punctuation (``３８．５``,
    ``３８，５``), the Chinese full stop (``38。5``), surrounding spaces and, when ``unit`` is
    a temperature (°C), a trailing unit: ``38.5℃``, ``38.5°C``, ``38.5 °``, ``38.5度``.
    Raises ValueError when what is left is not a finite decimal number.
    """
    norm = unicodedata.normalize("NFKC", text).strip().lower()
    if unit == "°C":
        for suffix in _TEMPERATURE_UNITS:
            if norm.endswith(suffix):
                norm = norm[: -len(suffix)].strip()
                break
    norm = norm.replace(",", ".").replace("。", ".").replace(" ", "")
    if not _DECIMAL.fullmatch(norm):  # no exponents, NaN or Infinity: digits as people write
        raise ValueError(text)
    return Decimal(norm)


def parse_typed(item: Item, text: str, max_text: int) -> str:
    """Validate a typed answer; returns the raw answer to store.

    Numbers go through :func:`parse_number`. A ``number`` item (the temperature) keeps one
    decimal as typed: ``38`` is stored as ``38.0``, ``38.50`` as ``38.5``, and a value that
    needs a second decimal (``37.95``) is refused with ``one_decimal`` — never rounded, since
    rounding 37.95 to 38.0 would decide a fever rule on a number nobody reported.
    """
    if item.kind == "text" and has_xml_forbidden(text):  # before strip(): it eats some of them
        raise InputError("control_chars", item)
    text = text.strip()
    if item.kind == "text":
        if not text:
            raise InputError("empty", item)
        if len(text) > max_text:
            raise InputError("too_long", item)
        return text
    if item.kind in ("single", "multi"):
        raise InputError("use_buttons", item)
    try:
        value = parse_number(text, item.unit)
    except ValueError:
        raise InputError("not_a_number", item) from None
    assert item.min is not None and item.max is not None
    if item.kind in ("scale", "count"):
        if value != value.to_integral_value():
            raise InputError("whole_number", item)
        if not item.min <= value <= item.max:
            raise InputError("out_of_range", item)
        return str(int(value))
    one = value.quantize(ONE_DECIMAL)
    if one != value:
        raise InputError("one_decimal", item)
    if not Decimal(str(item.min)) <= one <= Decimal(str(item.max)):
        raise InputError("out_of_range", item)
    return str(one)
