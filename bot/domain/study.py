"""The study definition: schedule, diary items and escalation rules, loaded from one TOML file.

Pure: no Telegram, no SQL. Loading validates everything up front so that a typo in the study
file stops the bot at start-up with an error naming the key, instead of surprising a patient
at 20:00.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from datetime import time
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain.sms_templates import SmsConfigError, SmsTemplates, parse_sms

ITEM_KINDS = ("single", "multi", "scale", "count", "number", "text")
LEVELS = ("urgent", "review", "compliance")
FORMS = ("daily", "weekly")
DEFAULT_STUDY = "nct06438809.toml"
SHIPPED_PLACEHOLDER_PHONE = "+86 21 3116 6666"
"""The contact phone the packaged study ships with: `diarybot run` refuses to start with it
(patients would be told to call a number nobody answers); the sandbox and the tests may use it."""


class StudyError(ValueError):
    """The study definition is invalid; the message names the offending key."""


@dataclass(frozen=True)
class Option:
    code: str
    value: float
    text: str
    exclusive: bool = False


@dataclass(frozen=True)
class Condition:
    """A test on one item's answer. Unset fields do not constrain."""

    item: str
    in_: tuple[str, ...] = ()
    any_: tuple[str, ...] = ()
    gte: float | None = None
    lt: float | None = None
    above_baseline_gte: float | None = None
    above_baseline_lt: float | None = None
    days: tuple[int, int] | None = None

    @property
    def needs_baseline(self) -> bool:
        return self.above_baseline_gte is not None or self.above_baseline_lt is not None


@dataclass(frozen=True)
class Item:
    code: str
    kind: str
    short: str
    text: str
    weekly_text: str | None = None
    options: tuple[Option, ...] = ()
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    days: tuple[int, int] | None = None
    show_if: Condition | None = None

    def option(self, code: str) -> Option | None:
        return next((o for o in self.options if o.code == code), None)

    def question(self, form: str) -> str:
        return self.weekly_text if form == "weekly" and self.weekly_text else self.text


@dataclass(frozen=True)
class Phase:
    code: str
    name: str
    form: str
    first_day: int
    last_day: int
    every_days: int
    reminder_after_hours: float
    close_next_day_at: time | None = None
    close_after_hours: float | None = None


@dataclass(frozen=True)
class Visit:
    code: str
    name: str
    day: int
    window_days: int


@dataclass(frozen=True)
class Rule:
    code: str
    level: str
    reason: str
    conditions: tuple[Condition, ...]
    consecutive: int = 1
    without_baseline: bool = False
    """A fallback: the rule applies only while the patient has no baseline for its items."""

    @property
    def needs_baseline(self) -> bool:
        return any(c.needs_baseline for c in self.conditions)

    @property
    def needs_history(self) -> bool:
        """Judging it needs the patient's earlier diaries: a baseline (or knowing there is
        none, for a fallback) or the diaries before this one."""
        return self.needs_baseline or self.without_baseline or self.consecutive > 1


@dataclass(frozen=True)
class Safety:
    """The patient safety text shown with an urgent alert: ethics-approved, one per language,
    versioned. ``{emergency}`` in a text is replaced by ``emergency_number``."""

    version: str
    emergency_number: str
    texts: tuple[tuple[str, str], ...]
    """(locale, text) for every study language, in the order of ``Study.languages``."""

    def language(self, locale: str) -> str:
        """The language of the text shown for `locale`: itself, or the study's first language
        when the study has no text in it."""
        return locale if locale in dict(self.texts) else self.texts[0][0]

    def text(self, locale: str) -> str:
        raw = dict(self.texts)[self.language(locale)]
        return raw.replace("{emergency}", self.emergency_number)


@dataclass(frozen=True)
class Study:
    id: str
    protocol: str
    title: str
    timezone: str
    contact_phone: str
    emergency_number: str
    languages: tuple[str, ...]
    default_prompt_time: time
    digest_time: time
    code_valid_hours: int
    max_free_text: int
    closing_day: int
    missed_in_a_row_alert: int
    phases: tuple[Phase, ...]
    visits: tuple[Visit, ...]
    visit_reminder_days: tuple[int, ...]
    visit_reminder_at: time
    items: tuple[Item, ...]
    rules: tuple[Rule, ...]
    safety: Safety
    resend_every_minutes: float = 15
    sae_reminder_every_minutes: float = 60
    sae_report_within_hours: float = 24
    message_text_keep_days: int = 30
    baseline_min_diaries: int = 3
    sms: SmsTemplates | None = None  # [sms]: provider-approved templates (bot/domain/sms_templates)
    source: str = field(default="", compare=False)
    content: str = field(default="", compare=False, repr=False)  # the file's text, as read

    def item(self, code: str) -> Item:
        for it in self.items:
            if it.code == code:
                return it
        raise KeyError(code)

    def phase(self, code: str) -> Phase:
        for ph in self.phases:
            if ph.code == code:
                return ph
        raise KeyError(code)

    def rule(self, code: str) -> Rule | None:
        return next((r for r in self.rules if r.code == code), None)


# --------------------------------------------------------------------------- loading


def default_study_path() -> Path:
    return Path(str(resources.files("bot") / "studies" / DEFAULT_STUDY))


def load_study(path: str | Path | None = None) -> Study:
    """Read and validate a study definition (the packaged NCT06438809 one by default)."""
    p = Path(path) if path else default_study_path()
    try:
        text = p.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError as exc:
        raise StudyError(f"study definition not found: {p}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{p}: not valid TOML: {exc}") from exc
    study = parse_study(raw)
    return _with_source(study, str(p), text)


def _with_source(study: Study, source: str, content: str = "") -> Study:
    object.__setattr__(study, "source", source)
    object.__setattr__(study, "content", content)
    return study


class _Reader:
    """Typed access to one TOML table that names the key path in every error.

    Every key the parser asks for is noted; `reject_unknown` then refuses keys nobody asked
    for, so a typo (`dayz = [0, 14]`) fails at start-up instead of silently asking the fever
    question every day. Readers of sub-tables share one registry with the top reader.
    """

    def __init__(self, data: Any, path: str, registry: list[_Reader] | None = None) -> None:
        if not isinstance(data, dict):
            raise StudyError(f"{path}: expected a table")
        self.data = data
        self.path = path
        self.asked: set[str] = set()
        self.registry = registry if registry is not None else []
        self.registry.append(self)

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def reject_unknown(self) -> None:
        for reader in self.registry:
            for name in reader.data:
                if name not in reader.asked:
                    known = ", ".join(sorted(reader.asked)) or "none"
                    raise StudyError(
                        f"{reader.key(name)}: unknown key here (a typo?); known keys: {known}"
                    )

    def get(self, name: str, typ: type | tuple[type, ...], default: Any = ...) -> Any:
        self.asked.add(name)
        if name not in self.data:
            if default is ...:
                raise StudyError(f"{self.key(name)}: missing")
            return default
        value = self.data[name]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
            raise StudyError(f"{self.key(name)}: expected {_typename(typ)}, got {value!r}")
        return value

    def text(self, name: str, default: Any = ...) -> str:
        value = self.get(name, str, default)
        if value is not None and isinstance(value, str) and not value.strip():
            raise StudyError(f"{self.key(name)}: must not be empty")
        return value

    def clock(self, name: str, default: Any = ...) -> Any:
        value = self.get(name, str, default)
        if value is None or isinstance(value, time):
            return value
        try:
            return parse_hhmm(value)
        except ValueError as exc:
            raise StudyError(f"{self.key(name)}: expected HH:MM, got {value!r}") from exc

    def day_range(self, name: str) -> tuple[int, int] | None:
        value = self.get(name, list, None)
        if value is None:
            return None
        if len(value) != 2 or not all(isinstance(v, int) for v in value) or value[0] > value[1]:
            raise StudyError(f"{self.key(name)}: expected [first_day, last_day], got {value!r}")
        return (value[0], value[1])

    def tables(self, name: str) -> list[_Reader]:
        value = self.get(name, list, [])
        return [_Reader(v, f"{self.key(name)}[{i}]", self.registry) for i, v in enumerate(value)]


def _typename(typ: type | tuple[type, ...]) -> str:
    if isinstance(typ, tuple):
        return " or ".join(t.__name__ for t in typ)
    return {str: "text", int: "a whole number", float: "a number", list: "a list"}.get(
        typ, typ.__name__
    )


def parse_hhmm(value: str) -> time:
    """Parse a strict 24-hour 'HH:MM'."""
    parts = value.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise ValueError(value)
    hour, minute = int(parts[0]), int(parts[1])
    return time(hour, minute)


def _condition(r: _Reader) -> Condition:
    rng = r.day_range("days")
    return Condition(
        item=r.text("item"),
        in_=tuple(str(v) for v in r.get("in", list, [])),
        any_=tuple(str(v) for v in r.get("any", list, [])),
        gte=r.get("gte", float, None),
        lt=r.get("lt", float, None),
        above_baseline_gte=r.get("above_baseline_gte", float, None),
        above_baseline_lt=r.get("above_baseline_lt", float, None),
        days=rng,
    )


def parse_study(raw: dict[str, Any]) -> Study:
    top = _Reader(raw, "")
    s = _Reader(top.get("study", dict), "study", top.registry)
    sched = _Reader(top.get("schedule", dict), "schedule", top.registry)
    esc = _Reader(top.get("escalation", dict, {}), "escalation", top.registry)
    vr = _Reader(top.get("visit_reminders", dict, {}), "visit_reminders", top.registry)

    tz = s.text("timezone")
    _check_tz(tz, s.key("timezone"))

    phases = []
    for pr in sched.tables("phases"):
        form = pr.text("form")
        if form not in FORMS:
            raise StudyError(f"{pr.key('form')}: expected one of {FORMS}, got {form!r}")
        every = pr.get("every_days", int)
        if every < 1:
            raise StudyError(f"{pr.key('every_days')}: must be 1 or more")
        close_at = pr.clock("close_next_day_at", None)
        close_h = pr.get("close_after_hours", float, None)
        if (close_at is None) == (close_h is None):
            raise StudyError(f"{pr.path}: set exactly one of close_next_day_at, close_after_hours")
        first, last = pr.get("first_day", int), pr.get("last_day", int)
        if first > last:
            raise StudyError(f"{pr.key('first_day')}: after last_day")
        phases.append(
            Phase(
                code=pr.text("code"),
                name=pr.text("name"),
                form=form,
                first_day=first,
                last_day=last,
                every_days=every,
                reminder_after_hours=pr.get("reminder_after_hours", float, 3.0),
                close_next_day_at=close_at,
                close_after_hours=close_h,
            )
        )
    if not phases:
        raise StudyError("schedule.phases: at least one phase is needed")
    ordered = sorted(phases, key=lambda p: p.first_day)
    for a, b in itertools.pairwise(ordered):
        if b.first_day <= a.last_day:
            raise StudyError(f"schedule.phases: {a.code!r} and {b.code!r} overlap")
    _unique([p.code for p in phases], "schedule.phases code")

    visits = tuple(
        Visit(
            code=vr_.text("code"),
            name=vr_.text("name"),
            day=vr_.get("day", int),
            window_days=vr_.get("window_days", int, 0),
        )
        for vr_ in sched.tables("visits")
    )
    _unique([v.code for v in visits], "schedule.visits code")

    items: list[Item] = []
    for ir in top.tables("items"):
        kind = ir.text("kind")
        if kind not in ITEM_KINDS:
            raise StudyError(f"{ir.key('kind')}: expected one of {ITEM_KINDS}, got {kind!r}")
        options = tuple(
            Option(
                code=o.text("code"),
                value=o.get("value", float),
                text=o.text("text"),
                exclusive=o.get("exclusive", bool, False),
            )
            for o in ir.tables("options")
        )
        if kind in ("single", "multi") and len(options) < 2:
            raise StudyError(f"{ir.key('options')}: a {kind} item needs at least two options")
        _unique([o.code for o in options], f"{ir.key('options')} code")
        for o in options:
            if not o.code.isascii() or len(o.code) > 8:
                raise StudyError(f"{ir.key('options')}: code {o.code!r} must be short ASCII")
        lo, hi = ir.get("min", float, None), ir.get("max", float, None)
        if kind in ("scale", "count", "number") and (lo is None or hi is None or lo >= hi):
            raise StudyError(f"{ir.path}: a {kind} item needs min < max")
        show_if = ir.get("show_if", dict, None)
        code = ir.text("code")
        if not code.isascii() or len(code) > 16:
            raise StudyError(f"{ir.key('code')}: must be short ASCII, got {code!r}")
        items.append(
            Item(
                code=code,
                kind=kind,
                short=ir.text("short"),
                text=ir.text("text"),
                weekly_text=ir.text("weekly_text", None),
                options=options,
                min=lo,
                max=hi,
                unit=ir.get("unit", str, None),
                days=ir.day_range("days"),
                show_if=(
                    _condition(_Reader(show_if, ir.key("show_if"), ir.registry))
                    if show_if
                    else None
                ),
            )
        )
    if not items:
        raise StudyError("items: the diary needs at least one item")
    _unique([i.code for i in items], "items code")
    by_code = {i.code: i for i in items}
    for idx, it in enumerate(items):
        if it.show_if is not None:
            dep = by_code.get(it.show_if.item)
            if dep is None or items.index(dep) >= idx:
                raise StudyError(
                    f"items[{idx}].show_if.item: {it.show_if.item!r} is not an earlier item"
                )
            _check_codes(it.show_if, dep, f"items[{idx}].show_if")

    rules: list[Rule] = []
    for rr in top.tables("rules"):
        level = rr.text("level")
        if level not in LEVELS:
            raise StudyError(f"{rr.key('level')}: expected one of {LEVELS}, got {level!r}")
        conds: list[Condition] = []
        if "when" in rr.data:
            conds.append(_condition(_Reader(rr.get("when", dict), rr.key("when"), rr.registry)))
        conds.extend(_condition(c) for c in rr.tables("all"))
        if not conds:
            raise StudyError(f"{rr.path}: needs `when` or `all`")
        for i, c in enumerate(conds):
            if c.item not in by_code:
                raise StudyError(f"{rr.path}: condition {i} names unknown item {c.item!r}")
            _check_codes(c, by_code[c.item], rr.path)
        consecutive = rr.get("consecutive", int, 1)
        if consecutive < 1:
            raise StudyError(f"{rr.key('consecutive')}: must be 1 or more")
        without = rr.get("without_baseline", bool, False)
        if without and any(c.needs_baseline for c in conds):
            raise StudyError(
                f"{rr.key('without_baseline')}: a fallback rule cannot compare with baseline"
            )
        rules.append(
            Rule(
                code=rr.text("code"),
                level=level,
                reason=rr.text("reason"),
                conditions=tuple(conds),
                consecutive=consecutive,
                without_baseline=without,
            )
        )
    _unique([r.code for r in rules], "rules code")

    languages = tuple(s.get("languages", list, ["zh_Hans", "en"]))
    keep_days = s.get("message_text_keep_days", int, 30)
    if keep_days < 1:
        raise StudyError(f"{s.key('message_text_keep_days')}: must be at least 1 day")
    min_baseline = esc.get("baseline_min_diaries", int, 3)
    if min_baseline < 1:
        raise StudyError(f"{esc.key('baseline_min_diaries')}: must be 1 or more")
    safety = _safety(_Reader(top.get("safety", dict), "safety", top.registry), languages)
    study = Study(
        id=s.text("id"),
        protocol=s.text("protocol"),
        title=s.text("title"),
        timezone=tz,
        contact_phone=s.text("contact_phone"),
        emergency_number=safety.emergency_number,
        languages=languages,
        default_prompt_time=s.clock("default_prompt_time", "20:00"),
        digest_time=s.clock("digest_time", "09:00"),
        code_valid_hours=s.get("code_valid_hours", int, 336),
        max_free_text=s.get("max_free_text", int, 1000),
        closing_day=sched.get("closing_day", int),
        missed_in_a_row_alert=sched.get("missed_in_a_row_alert", int, 3),
        phases=tuple(ordered),
        visits=visits,
        visit_reminder_days=tuple(vr.get("days_before", list, [3, 1])),
        visit_reminder_at=vr.clock("at", "10:00"),
        items=tuple(items),
        rules=tuple(rules),
        safety=safety,
        resend_every_minutes=esc.get("resend_every_minutes", float, 15.0),
        sae_reminder_every_minutes=esc.get("sae_reminder_every_minutes", float, 60.0),
        sae_report_within_hours=esc.get("sae_report_within_hours", float, 24.0),
        message_text_keep_days=keep_days,
        baseline_min_diaries=min_baseline,
        sms=_sms(top.get("sms", dict, None), languages),
    )
    top.reject_unknown()  # after every read above, including the ones in Study(...)
    return study


def _safety(r: _Reader, languages: tuple[str, ...]) -> Safety:
    texts = _Reader(r.get("text", dict), r.key("text"), r.registry)
    by_lang = {lang: texts.text(lang) for lang in languages}
    for lang, text in by_lang.items():
        rest = text.replace("{emergency}", "")
        if "{" in rest or "}" in rest:
            raise StudyError(f"{texts.key(lang)}: the only placeholder allowed is {{emergency}}")
    return Safety(
        version=r.text("version"),
        emergency_number=r.text("emergency_number"),
        texts=tuple(by_lang.items()),
    )


def _sms(raw: dict[str, Any] | None, languages: tuple[str, ...]) -> SmsTemplates | None:
    try:
        return parse_sms(raw, languages)
    except SmsConfigError as exc:
        raise StudyError(str(exc)) from exc


def _check_codes(cond: Condition, item: Item, where: str) -> None:
    known = {o.code for o in item.options}
    for code in (*cond.in_, *cond.any_):
        if code not in known:
            raise StudyError(f"{where}: {item.code} has no option {code!r}")


def _check_tz(name: str, key: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise StudyError(f"{key}: unknown time zone {name!r}") from exc


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise StudyError(f"{what}: {v!r} appears twice")
        seen.add(v)
