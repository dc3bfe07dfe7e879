"""Every message the bot can send, drawn by the bot's own views in zh_Hans and en side by side.

For translators and the ethics committee: the page at /screens lists each screen with a note on
when it appears. Screens are produced by calling the real view functions (the ones handlers and
the scheduler call) with example data, so what is reviewed is exactly what patients and staff
get — never a copy of the catalog.

A registry: a *provider* is a function `(Samples) -> Iterable[Screen]`. The core providers live
here; a feature package adds its own screens in `bot/<feature>/screens.py` as
`def screens(samples: Samples) -> Iterable[Screen]` (listed in `FEATURE_MODULES`).

Last comes "Other texts" (`other_texts`): every msgid of locales/messages.pot that no screen
above shows, translated in both languages with its placeholders left visible, so a reviewer
sees the whole catalog even where no example draws a text (a chart label, a command menu
entry, a refusal no sample reaches).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from babel.messages.pofile import read_po

from bot.domain import questionnaire as q
from bot.domain.schedule import diary_occurrences
from bot.domain.study import Item, Study
from bot.i18n import DOMAIN, LOCALE_DIR, T, t, translations
from bot.messenger import Buttons
from bot.services.diary import Outcome
from conversations import diary_view, settings, staff, start
from storage.repo import OccRow, Patient

log = logging.getLogger(__name__)

Rendered = tuple[str, Buttons] | str


def bound(render: Callable[..., Rendered], *args: Any) -> Callable[[T], Rendered]:
    """`render(_, *args)` with the sample data fixed now (a bare lambda in a loop would see
    the loop's last value)."""
    return lambda _: render(_, *args)


LOCALES = ("zh_Hans", "en")
#: Feature packages that may add screens (`screens(samples)`), imported when present.
FEATURE_MODULES = (
    "bot.escalation.screens",
    "bot.followup.screens",
    "bot.delivery.screens",
    "bot.dataout.screens",
    "bot.sandbox.feature_screens",
)
#: The example patient's injection day; any date works, this one reads well in both languages.
SAMPLE_INJECTION = date(2026, 12, 1)
SAMPLE_TEXT = "头痛两天 / headache for two days"


@dataclass(frozen=True)
class Screen:
    key: str  # stable id, e.g. "diary.question.BLEED"
    group: str  # section of the page
    when: str  # for reviewers: when this is shown (English)
    render: Callable[[T], Rendered]


@dataclass(frozen=True)
class Samples:
    """Example data the screens are drawn with."""

    study: Study
    patient: Patient
    daily: OccRow  # an open daily diary on a day every daily item applies
    weekly: OccRow | None  # an open weekly diary, if the study has one
    next_daily: OccRow  # the diary after `daily`
    answers: dict[str, str]  # a complete daily diary in which every follow-up applies


Provider = Callable[[Samples], Iterable[Screen]]


# ------------------------------------------------------------------ example data
def sample_value(study: Study, item: Item) -> str:
    """An answer to `item` that makes its follow-up questions apply (so they can be shown)."""
    wanted = [
        code
        for other in study.items
        if other.show_if is not None and other.show_if.item == item.code
        for code in (*other.show_if.in_, *other.show_if.any_)
    ]
    if item.kind == "single":  # the option that opens the most follow-ups (first on a tie)
        return max(item.options, key=lambda o: wanted.count(o.code)).code
    if item.kind == "multi":
        plain = [o.code for o in item.options if not o.exclusive]
        chosen = [c for c in plain if c in wanted] or plain[:1]
        return ",".join(chosen)
    if item.kind in ("scale", "count"):
        lo, hi = int(item.min or 0), int(item.max or 0)
        return str(min(hi, lo + 3))
    if item.kind == "number":
        low, high = float(item.min or 0), float(item.max or 0)
        return "38.6" if low <= 38.6 <= high else str(low)
    return SAMPLE_TEXT


def occ_row(occ: Any, occ_id: int, status: str = "prompted") -> OccRow:
    return OccRow(
        id=occ_id,
        patient_id=1,
        key=occ.key,
        phase=occ.phase,
        form=occ.form,
        study_day=occ.study_day,
        local_date=occ.local_date,
        opens_at=occ.opens_at,
        remind_at=occ.remind_at,
        closes_at=occ.closes_at,
        status=status,
        submitted_at=None,
    )


def make_samples(study: Study) -> Samples:
    patient = Patient(
        id=1,
        subject="RP-001",
        injection_date=SAMPLE_INJECTION,
        enrolled_on=SAMPLE_INJECTION - timedelta(days=7),
        lang="zh_Hans",
        timezone=study.timezone,
        prompt_time=study.default_prompt_time,
        status="active",
        chat_id=501,
        user_id=501,
        unreachable=False,
    )
    answers = {it.code: sample_value(study, it) for it in study.items}
    occs = diary_occurrences(study, patient.injection_date, patient.timezone, patient.prompt_time)
    daily_occs = [o for o in occs if o.form != "weekly"]
    # The daily diary on which the most items apply (e.g. a day that still asks about fever).
    best = max(
        daily_occs[:60],
        key=lambda o: (len(q.applicable_items(study, o.study_day, answers)), -o.study_day),
    )
    after = next((o for o in daily_occs if o.study_day > best.study_day), best)
    weekly = next((o for o in occs if o.form == "weekly"), None)
    return Samples(
        study=study,
        patient=patient,
        daily=occ_row(best, 10),
        weekly=occ_row(weekly, 20) if weekly else None,
        next_daily=occ_row(after, 11, "scheduled"),
        answers=q.clean(study, best.study_day, answers),
    )


def _before(study: Study, occ: OccRow, answers: dict[str, str], item: Item) -> dict[str, str]:
    """The answers given before `item` is asked (the view shows "Question n of m" from them)."""
    out: dict[str, str] = {}
    for it in q.applicable_items(study, occ.study_day, answers):
        if it.code == item.code:
            break
        out[it.code] = answers[it.code]
    return out


# ------------------------------------------------------------------ core providers
def diary_screens(s: Samples) -> Iterable[Screen]:
    study, patient, occ = s.study, s.patient, s.daily
    yield Screen(
        "diary.prompt.daily",
        "Diary",
        "The daily prompt, at the patient's prompt time",
        lambda _: diary_view.prompt(_, occ),
    )
    if s.weekly is not None:
        weekly = s.weekly
        yield Screen(
            "diary.prompt.weekly",
            "Diary",
            "The weekly prompt",
            lambda _: diary_view.prompt(_, weekly),
        )
    yield Screen(
        "diary.reminder",
        "Diary",
        "The reminder, when the diary is still open some hours after the prompt",
        lambda _: diary_view.prompt(_, occ, reminder=True),
    )
    for item in q.applicable_items(study, occ.study_day, s.answers):
        before = _before(study, occ, s.answers, item)
        outcome = Outcome("question", occ, item=item, answers=before)
        yield Screen(
            f"diary.question.{item.code}",
            "Diary",
            f"Daily diary question {item.code} ({item.kind})"
            + (f"; asked only if {item.show_if.item} is answered so" if item.show_if else "")
            + (f"; only on study days {item.days[0]}–{item.days[1]}" if item.days else ""),
            bound(diary_view.question, study, outcome),
        )
        if item.kind in ("multi", "number", "text"):
            ticked = replace(outcome, answers={**before, item.code: s.answers[item.code]})
            yield Screen(
                f"diary.question.{item.code}.answered",
                "Diary",
                f"{item.code} again, with an answer already given (changing it from the review)",
                bound(diary_view.question, study, ticked),
            )
    if s.weekly is not None:
        weekly = s.weekly
        # Every item answered, so that weekly-only items (e.g. days with bleeding) show too.
        full = {it.code: sample_value(study, it) for it in study.items}
        shown = {it.code for it in q.applicable_items(study, occ.study_day, s.answers)}
        for item in q.applicable_items(study, weekly.study_day, full):
            if item.question("weekly") == item.question("daily") and item.code in shown:
                continue
            outcome = Outcome(
                "question", weekly, item=item, answers=_before(study, weekly, full, item)
            )
            yield Screen(
                f"diary.question.{item.code}.weekly",
                "Diary",
                f"Weekly diary question {item.code} (7-day recall)",
                bound(diary_view.question, study, outcome),
            )
    review = Outcome("review", occ, answers=s.answers)
    yield Screen(
        "diary.review",
        "Diary",
        "The review screen after the last question: change any answer, or submit",
        lambda _: diary_view.review(_, study, review),
    )
    done = Outcome("submitted", occ, answers=s.answers, next_occ=s.next_daily)
    yield Screen(
        "diary.submitted",
        "Diary",
        "After Submit",
        lambda _: diary_view.submitted(_, patient, done),
    )
    last = Outcome("submitted", occ, answers=s.answers, next_occ=None)
    yield Screen(
        "diary.submitted.last",
        "Diary",
        "After Submit of the last diary of the study",
        lambda _: diary_view.submitted(_, patient, last),
    )
    notes = {
        "already_done": "/diary or an old button when today's diary is already submitted",
        "closed": "A button of a diary whose window has closed (it is now missed)",
        "not_open": "/diary when no diary is open",
        "stale": "A button of an earlier screen of the same diary",
        "not_yours": "A forged or foreign button",
    }
    for status, when in notes.items():
        o = Outcome(status, occ, next_occ=s.next_daily)
        yield Screen(
            f"diary.status.{status}",
            "Diary",
            when,
            bound(diary_view.status_text, patient, o),
        )
    for status in ("paused", "withdrawn"):
        other = replace(patient, status=status)
        o = Outcome("not_open", occ, next_occ=s.next_daily)
        yield Screen(
            f"diary.status.not_open.{status}",
            "Diary",
            f"/diary when the patient's follow-up is {status}",
            bound(diary_view.status_text, other, o),
        )
    yield from _error_screens(s)


def _error_screens(s: Samples) -> Iterable[Screen]:
    study, occ = s.study, s.daily
    by_kind: dict[str, Item] = {}
    for it in study.items:
        by_kind.setdefault(it.kind, it)
    for code in diary_view.ERRORS:
        if code in ("not_a_number", "out_of_range", "whole_number", "one_decimal"):
            item = by_kind.get("number") or by_kind.get("count")
        elif code in ("too_long", "empty", "control_chars"):
            item = by_kind.get("text")
        elif code == "choose_one":
            item = by_kind.get("multi")
        elif code == "use_buttons_review":
            item = None
        else:
            item = by_kind.get("single")
        o = Outcome("invalid", occ, item=item, error=code)
        yield Screen(
            f"diary.error.{code}",
            "Diary: refused input",
            f"Refused input ({code})" + (f", e.g. at {item.code}" if item else ""),
            bound(diary_view.error_text, study, o),
        )


def start_screens(s: Samples) -> Iterable[Screen]:
    study, patient = s.study, s.patient
    yield Screen(
        "start.language",
        "Start, help and settings",
        "/start with a valid code when the study team left the language open (bilingual)",
        lambda _: start.language_question(),
    )
    yield Screen(
        "start.welcome",
        "Start, help and settings",
        "After the enrolment code is accepted (and on /start later)",
        lambda _: start.welcome(_, study.contact_phone, patient),
    )
    yield Screen(
        "start.help", "Start, help and settings", "/help", lambda _: start.help_text(_, study)
    )
    yield Screen(
        "settings.menu",
        "Start, help and settings",
        "/settings",
        lambda _: settings.menu(_, patient),
    )
    yield Screen(
        "staff.help",
        "Staff",
        "/start or /help from a registered staff member",
        lambda _: staff.staff_help(_),
    )


CORE_PROVIDERS: tuple[Provider, ...] = (diary_screens, start_screens)


def providers() -> list[Provider]:
    """The core providers, then each feature's `screens` (modules that do not exist yet are
    skipped; a module that fails to import is an error, not a silent gap)."""
    found: list[Provider] = list(CORE_PROVIDERS)
    for name in FEATURE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        found.append(module.screens)
    return found


# ------------------------------------------------------------------ rendering
def _shape(rendered: Rendered) -> dict[str, Any]:
    text, buttons = (rendered, []) if isinstance(rendered, str) else rendered
    return {
        "text": text,
        "buttons": [[{"text": label, "data": data} for label, data in row] for row in buttons],
    }


def render_all(study: Study, only: Iterable[Provider] | None = None) -> list[dict[str, Any]]:
    """Every screen of every provider (or of `only`) in both languages, ready for the page.

    A screen that fails to draw is listed with its error instead of vanishing, so a reviewer
    sees the gap and a developer sees why.
    """
    samples = make_samples(study)
    out: list[dict[str, Any]] = []
    for provider in providers() if only is None else only:
        try:
            screens = list(provider(samples))
        except Exception as exc:
            log.exception("screens provider %s failed", provider.__qualname__)
            out.append(_failed(f"{provider.__module__}.{provider.__qualname__}", exc))
            continue
        for screen in screens:
            entry: dict[str, Any] = {"key": screen.key, "group": screen.group, "when": screen.when}
            try:
                for locale in LOCALES:
                    entry[locale] = _shape(screen.render(t(locale)))
            except Exception as exc:
                log.exception("screen %s failed", screen.key)
                out.append(_failed(screen.key, exc, screen.group))
                continue
            entry["same"] = entry["zh_Hans"] == entry["en"]
            out.append(entry)
    return out


def _failed(key: str, exc: Exception, group: str = "Errors") -> dict[str, Any]:
    return {
        "key": key,
        "group": group,
        "when": "",
        "error": f"{type(exc).__name__}: {exc}",
    }


# ------------------------------------------------------------------ the rest of the catalog
OTHER_GROUP = "Other texts (catalog entries no screen above shows)"
POT = LOCALE_DIR / f"{DOMAIN}.pot"
_PLACEHOLDER = re.compile(r"\{\w*\}")


@dataclass(frozen=True)
class Msg:
    """One catalog entry: `plural` is set for an ngettext entry."""

    id: str
    plural: str | None
    comments: tuple[str, ...]  # the extractor's notes, e.g. "study: visits[2].name"

    def forms(self) -> tuple[str, ...]:
        return (self.id,) if self.plural is None else (self.id, self.plural)

    def translated(self, locale: str) -> str:
        """The translation with its placeholders unfilled (both plural forms, if any)."""
        tr = translations(locale)
        if self.plural is None:
            return tr.gettext(self.id)
        forms = dict.fromkeys(tr.ngettext(self.id, self.plural, n) for n in (1, 2))
        return "\n".join(forms)


def catalog() -> list[Msg]:
    """Every msgid of locales/messages.pot, in its order."""
    with POT.open("rb") as fp:
        entries = read_po(fp)
    out = []
    for m in entries:
        if not m.id:
            continue
        ids = (m.id, None) if isinstance(m.id, str) else (m.id[0], m.id[1])
        out.append(Msg(ids[0], ids[1], tuple(m.auto_comments) + tuple(m.user_comments)))
    return out


def msgid_pattern(text: str) -> re.Pattern[str]:
    """`text` (a msgid or a translation) as a pattern: its literal pieces in order, any text on
    the same line where a `{placeholder}` stands."""
    return re.compile(".*?".join(re.escape(piece) for piece in _PLACEHOLDER.split(text)))


def _strings(rendered: dict[str, Any]) -> list[str]:
    """A rendering's text and each of its button labels."""
    return [rendered["text"], *(b["text"] for row in rendered["buttons"] for b in row)]


def shown(msg: Msg, entries: list[dict[str, Any]]) -> bool:
    """True if some drawn screen shows `msg` in both languages: its English text and its zh_Hans
    translation both occur (placeholders matching anything) in the same screen. Requiring the
    Chinese too keeps a short msgid ("No diary") from counting as shown merely because a longer
    sentence begins with the same words."""
    for form in msg.forms():
        en = msgid_pattern(translations("en").gettext(form))
        zh = msgid_pattern(translations("zh_Hans").gettext(form))
        for entry in entries:
            if "error" in entry:
                continue
            if any(en.search(x) for x in _strings(entry["en"])) and any(
                zh.search(x) for x in _strings(entry["zh_Hans"])
            ):
                return True
    return False


def _slug(msgid: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", msgid.lower()).strip("-")[:48] or "x"


def other_texts(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The catalog entries that none of `entries` (the drawn screens) shows, one entry each,
    translated in both languages; placeholders stay visible as {name}."""
    out: list[dict[str, Any]] = []
    keys = {e["key"] for e in entries}
    for msg in catalog():
        if shown(msg, entries):
            continue
        key = base = f"other.{_slug(msg.id)}"
        n = 1
        while key in keys:
            n += 1
            key = f"{base}.{n}"
        keys.add(key)
        notes = "; ".join(msg.comments)
        entry: dict[str, Any] = {
            "key": key,
            "group": OTHER_GROUP,
            "when": "Catalog entry that no screen above draws" + (f" ({notes})" if notes else ""),
            "msgid": msg.id,
        }
        for locale in LOCALES:
            entry[locale] = _shape(msg.translated(locale))
        entry["same"] = entry["zh_Hans"] == entry["en"]
        out.append(entry)
    return out
