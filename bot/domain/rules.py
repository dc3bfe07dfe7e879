"""Escalation rules: which answers in a completed diary the study team must hear about.

The rules themselves live in the study definition (``[[rules]]`` in the study TOML) so that a
study team can change a threshold without a developer; this module only knows how to apply
them. It is pure — no Telegram, no SQL, no clock — so every clinical boundary (pain 7 vs 8,
38.0 °C on Day 14 vs 15, bowel movements +4 vs +7 above baseline) can be tested exhaustively
without a bot, and so the same code can re-evaluate stored diaries after a rule change.

Answers use the project-wide convention: ``Mapping[str, str]`` from item code to the raw stored
string (an option code for single items, option codes joined by "," for multi items, decimal
text for scale/count/number items, free text for text items). Items that were not asked are
absent, and an absent item never triggers anything.

The engine deliberately ignores when the questionnaire *asks* an item (``Item.days``,
``Item.show_if``): a rule is about what the patient reported, so a temperature that reaches us
on Day 40 (for instance through a data-change request) is judged by the rule's own ``days``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.domain.study import Condition, Item, Rule, Study

BASELINE_PHASE = "baseline"
"""Phase that asks the baseline diaries (Days -7 to -1); see :func:`is_baseline`."""

EVALUATED_LEVELS = ("urgent", "review")
"""Levels this module raises; compliance alerts come from the schedule, not from answers."""

# Answers carry at most one decimal and baselines are means of a handful of diaries, so a
# difference is rounded before it is compared: binary floating point must never be what decides
# whether "exactly 7 above baseline" is urgent or not.
_DELTA_DIGITS = 9


@dataclass(frozen=True)
class Diary:
    """One completed diary, as the rules see it (no timestamps: the engine has no clock)."""

    key: str
    """Occurrence key, e.g. "daily:12"; identifies the diary within the patient's history."""
    study_day: int
    """Day relative to the injection (Day 0), used by conditions limited to certain days."""
    phase: str
    """Phase code (for display); whether a diary is baseline depends on its study day."""
    answers: Mapping[str, str]
    """Item code → raw stored answer; items not asked are absent."""


@dataclass(frozen=True)
class Finding:
    """A rule that fired on a diary, with exactly what staff need to judge it.

    ``answers`` and ``baseline`` are restricted to the items of the rule, so the staff alert
    shows the triggering answers (and the baseline they were compared with) and nothing else.
    """

    rule: str
    """``Rule.code``: one open alert per patient and rule, so this is the de-duplication key."""
    level: str
    """urgent | review."""
    reason: str
    """The rule's English msgid; the caller translates it into the reader's language."""
    items: tuple[str, ...]
    """Codes of the items the rule tested, in questionnaire order."""
    answers: Mapping[str, str] = field(default_factory=dict)
    """Raw answers of those items in this diary."""
    baseline: Mapping[str, float] = field(default_factory=dict)
    """Baseline means of those items, for rules that compare with baseline; else empty."""


# --------------------------------------------------------------------------- answer values


def codes(raw: str) -> frozenset[str]:
    """The option codes in a stored single or multi answer ("ER,HOSP" → {"ER", "HOSP"}).

    Whitespace and empty parts are dropped so that a hand-edited export still compares
    correctly; a single answer is simply a one-element set.
    """
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def numeric(item: Item, raw: str) -> float | None:
    """The number a rule compares for this answer, or None if the answer has no number.

    single → the chosen option's ``value`` (the ordinal in the study file, not the code, so that
    a study can recode options without touching rules); scale/count/number → the decimal text.
    multi and text answers have no single number. Unparseable, unknown or non-finite values give
    None rather than raising: a damaged answer must not stop the other rules from running.
    """
    if item.kind == "single":
        option = item.option(raw.strip())
        return option.value if option is not None else None
    if item.kind in ("scale", "count", "number"):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    return None


def is_baseline(diary: Diary) -> bool:
    """A baseline diary is one dated before Day 0 (the injection).

    The study day, not the phase, decides: after a re-anchor the stored study days are
    recomputed from the new Day 0, so a diary answered after the real injection is never
    baseline, and diaries before the new Day 0 are, whatever phase asked them.
    """
    return diary.study_day < 0


def baseline_values(
    study: Study, diaries: Sequence[Diary], min_diaries: int | None = None
) -> dict[str, float]:
    """The patient's baseline per item: the median of the baseline diaries that answered it.

    The median, not the mean: most baseline days of an ordinal item are 0 or 1, and a mean of
    levels makes "2 levels worse" nearly unreachable. Single-choice (ordinal) items take the
    lower median, so the baseline is always a level a patient actually reported; scale, count
    and number items take the ordinary median (the mean of the middle two for an even count).
    An item has a baseline only when at least ``min_diaries`` baseline diaries answered it
    (``study.baseline_min_diaries`` by default, 3 for NCT06438809); otherwise it is absent,
    which is how the rules know to use their fallbacks. A skipped question does not count as 0.
    """
    need = study.baseline_min_diaries if min_diaries is None else min_diaries
    values: dict[str, list[float]] = {}
    for diary in diaries:
        if not is_baseline(diary):
            continue
        for item in study.items:
            raw = diary.answers.get(item.code)
            if raw is None:
                continue
            value = numeric(item, raw)
            if value is None:
                continue
            values.setdefault(item.code, []).append(value)
    out: dict[str, float] = {}
    for item in study.items:
        found = values.get(item.code, [])
        if len(found) < need:
            continue
        middle = statistics.median_low(found) if item.kind == "single" else statistics.median(found)
        out[item.code] = float(middle)
    return out


def baseline_means(study: Study, diaries: Sequence[Diary]) -> dict[str, float]:
    """Former name of :func:`baseline_values` (the baseline is now a median)."""
    return baseline_values(study, diaries)


# --------------------------------------------------------------------------- conditions


def matches(study: Study, cond: Condition, diary: Diary, baseline: Mapping[str, float]) -> bool:
    """Whether one condition holds for a diary.

    Every set field of the condition must hold:

    - ``in``: the answer's option codes are all among ``in`` (for a single item: the chosen code
      is one of them; for a multi item: nothing outside the list was chosen);
    - ``any``: at least one of the listed codes was chosen (multi-select "tap all that apply");
    - ``gte`` / ``lt``: the numeric value is ≥ / < the bound;
    - ``above_baseline_gte`` / ``above_baseline_lt``: value minus the patient's baseline mean;
    - ``days``: the diary's study day lies in the inclusive range.

    False when the item was not answered, when ``days`` excludes the diary, when a numeric test
    meets an answer without a number, and when the condition compares with baseline but there is
    no baseline for the item — or the diary *is* a baseline diary, which cannot be worse than
    itself.
    """
    raw = diary.answers.get(cond.item)
    if raw is None:
        return False
    if cond.days is not None and not cond.days[0] <= diary.study_day <= cond.days[1]:
        return False
    if cond.needs_baseline and (is_baseline(diary) or cond.item not in baseline):
        return False

    if cond.in_:
        chosen = codes(raw)
        if not chosen or not chosen <= set(cond.in_):
            return False
    if cond.any_ and not codes(raw) & set(cond.any_):
        return False

    numeric_tests = (cond.gte, cond.lt, cond.above_baseline_gte, cond.above_baseline_lt)
    if all(bound is None for bound in numeric_tests):
        return True
    value = numeric(study.item(cond.item), raw)
    if value is None:
        return False
    if cond.gte is not None and not value >= cond.gte:
        return False
    if cond.lt is not None and not value < cond.lt:
        return False
    if cond.needs_baseline:
        delta = round(value - baseline[cond.item], _DELTA_DIGITS)
        if cond.above_baseline_gte is not None and not delta >= cond.above_baseline_gte:
            return False
        if cond.above_baseline_lt is not None and not delta < cond.above_baseline_lt:
            return False
    return True


def _rule_matches(study: Study, rule: Rule, diary: Diary, baseline: Mapping[str, float]) -> bool:
    """A rule holds for one diary when all its conditions do (``all`` in the study file)."""
    return all(matches(study, c, diary, baseline) for c in rule.conditions)


def _lacks_baseline(rule: Rule, baseline: Mapping[str, float]) -> bool:
    return any(c.needs_baseline and c.item not in baseline for c in rule.conditions)


def _has_baseline(rule: Rule, baseline: Mapping[str, float]) -> bool:
    """A fallback rule (``without_baseline``) stands down once its items have a baseline."""
    return any(c.item in baseline for c in rule.conditions)


# --------------------------------------------------------------------------- evaluation


def evaluate(
    study: Study, diary: Diary, history: Sequence[Diary], baseline: Mapping[str, float]
) -> list[Finding]:
    """The urgent and review findings for a just-completed diary, in study rule order.

    ``history`` is the patient's earlier completed diaries, oldest first; baseline ones (before
    Day 0) may be included and are ignored here. A rule with ``consecutive = N`` fires only when
    it also held on each of the N-1 most recent earlier non-baseline diaries: missed diaries are
    not in the history, so "in a row" means the preceding *completed* diaries (clinical.md's "2
    consecutive diaries"), and a single bad day followed by a better one breaks the run. If the
    history is shorter than N-1, the rule cannot fire yet. A ``without_baseline`` rule (a
    fallback) runs only while its items have no baseline, and never on a baseline diary.

    Only diaries of earlier study days count as predecessors, so passing the current diary in
    ``history`` too, or re-evaluating an old diary against a longer history, is safe.
    """
    earlier = sorted(
        (d for d in history if not is_baseline(d) and d.study_day < diary.study_day),
        key=lambda d: d.study_day,
    )
    findings: list[Finding] = []
    for rule in study.rules:
        if rule.level not in EVALUATED_LEVELS:
            continue
        if rule.needs_baseline and (is_baseline(diary) or _lacks_baseline(rule, baseline)):
            continue
        if rule.without_baseline and (is_baseline(diary) or _has_baseline(rule, baseline)):
            continue
        if not _rule_matches(study, rule, diary, baseline):
            continue
        needed = rule.consecutive - 1
        if needed:
            previous = earlier[-needed:]
            if len(previous) < needed or not all(
                _rule_matches(study, rule, d, baseline) for d in previous
            ):
                continue
        findings.append(_finding(study, rule, diary, baseline))
    return findings


def _finding(study: Study, rule: Rule, diary: Diary, baseline: Mapping[str, float]) -> Finding:
    """Package a fired rule with the triggering answers, ordered as the patient saw them."""
    tested = {c.item for c in rule.conditions}
    compared = {c.item for c in rule.conditions if c.needs_baseline}
    items = tuple(it.code for it in study.items if it.code in tested)
    return Finding(
        rule=rule.code,
        level=rule.level,
        reason=rule.reason,
        items=items,
        answers={code: diary.answers[code] for code in items if code in diary.answers},
        baseline={code: baseline[code] for code in items if code in compared},
    )


def missing_baseline_rules(study: Study, baseline: Mapping[str, float]) -> list[str]:
    """Codes of the rules ``evaluate`` skips for want of a baseline, in study order.

    A patient enrolled after the injection has no baseline diaries; staff should see that only
    the absolute rules protect this patient, rather than assume "no alert" means "no worsening".
    """
    return [
        rule.code
        for rule in study.rules
        if rule.level in EVALUATED_LEVELS and _lacks_baseline(rule, baseline)
    ]
