"""What a diary step shows, independent of the channel: a `Screen` made from the diary state.

`screen(_, study, patient, outcome)` is the one place that decides a diary screen's content:
the header, "Question 3 of 8", the question, its choices (label, ticked, what a tap means),
whether an answer is typed, the review list with its "change" actions and Submit. Channels only
render it: Telegram as a message with inline buttons (conversations/diary_view.py), the web as
an HTML form (bot/web/templates/diary.html). What a tap means is an `Action`, carried as
callback data by Telegram and as a form button's value by the web, and `perform` turns it into
the same DiaryService call for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.domain import questionnaire as q
from bot.domain.study import Item, Study
from bot.i18n import N_, T
from bot.services.diary import DiaryService, Outcome, Respond
from storage.repo import OccRow, Patient

# Explanations for refused typed input (InputError codes).
ERRORS = {
    "not_a_number": N_("Please type a number, for example {example}."),
    "whole_number": N_("Please type a whole number from {min} to {max}."),
    "one_decimal": N_(
        "Please type the number with at most one digit after the decimal point, "
        "for example {example}."
    ),
    "out_of_range": N_("Please give a number from {min} to {max}."),
    "too_long": N_("That is too long: please keep it under {max} characters."),
    "empty": N_("Please type a few words."),
    "control_chars": N_(
        "Your message contains invisible control characters that cannot be saved."
        " Please type it again as plain text."
    ),
    "use_buttons": N_("Please tap one of the buttons above to answer."),
    "use_buttons_review": N_(
        "Please check your answers above and tap Submit, or a button to change one."
    ),
    "choose_one": N_("Please tap at least one option (or \u201cNone of these\u201d), then Done."),
    "bad_button": N_("That button is not valid. Please use the buttons of the current question."),
}

# Verbs of an Action (the same letters as the Telegram callback data `d:<verb>:…`).
START, ANSWER, TOGGLE, DONE, CHANGE, SUBMIT, BACK = "s", "a", "t", "n", "e", "x", "b"
_PART = re.compile(r"^[A-Za-z0-9_-]{1,24}$")


@dataclass(frozen=True)
class Action:
    """What a tap means: a verb on a diary (and an item and option code)."""

    verb: str
    occ_id: int
    item: str = ""
    code: str = ""

    def args(self) -> tuple[object, ...]:
        """The arguments after the verb, as Telegram's callback data carries them."""
        return tuple(a for a in (self.occ_id, self.item, self.code) if a != "")

    def encode(self) -> str:
        return ":".join([self.verb, *(str(a) for a in self.args())])

    @classmethod
    def decode(cls, text: str) -> Action | None:
        """Strict parse of `encode()`; anything else (forged, too long) is None."""
        parts = text.split(":") if text.isascii() and len(text) <= 64 else []
        if not 2 <= len(parts) <= 4 or not all(_PART.match(p) for p in parts):
            return None
        if not parts[1].isdigit():
            return None
        item = parts[2] if len(parts) > 2 else ""
        code = parts[3] if len(parts) > 3 else ""
        return cls(parts[0], int(parts[1]), item, code)


@dataclass(frozen=True)
class Choice:
    label: str
    action: Action
    selected: bool = False


@dataclass(frozen=True)
class ReviewLine:
    label: str  # the item's short name
    line: str  # "label: value"
    change: Action


@dataclass(frozen=True)
class Screen:
    """One diary screen. `kind`: question | review | message."""

    kind: str
    header: str = ""
    progress: str = ""
    pos: int = 0
    total: int = 0
    text: str = ""  # the question, or the message of a `message` screen
    item: str = ""  # the item asked
    occ_id: int = 0
    multi: bool = False  # choices are ticked on and off, then `done`
    rows: tuple[tuple[Choice, ...], ...] = ()
    done: Choice | None = None
    typed: str = ""  # "number" | "text" when the answer is typed
    so_far: str = ""  # "Your answer so far: …" for a typed answer being changed
    hint: str = ""  # how to type the answer
    max_length: int = 0  # a typed text's limit
    back: Action | None = None  # the question before (the web shows a Back button)
    intro: str = ""  # review: "Please check your answers:"
    answers: tuple[ReviewLine, ...] = ()
    outro: str = ""  # review: "Tap an answer to change it, or Submit …"
    submit: Choice | None = None


def value_text(_: T, item: Item, raw: str) -> str:
    """An answer as the patient (or a coordinator) reads it."""
    if item.kind == "single":
        opt = item.option(raw)
        return _(opt.text) if opt else raw
    if item.kind == "multi":
        labels = [_(o.text) for o in item.options if o.code in raw.split(",")]
        return "、".join(labels) if _.locale == "zh_Hans" else ", ".join(labels)
    if item.kind == "count" and item.max is not None and raw == str(int(item.max)):
        return f"{raw}+"
    if item.kind == "number":
        return f"{_.number(float(raw))} {item.unit or ''}".strip()
    return raw


def header(_: T, occ: OccRow) -> str:
    title = _("Weekly diary") if occ.form == "weekly" else _("Daily diary")
    return f"📝 {title} · {_.date(occ.local_date)}"


def question_screen(_: T, study: Study, o: Outcome) -> Screen:
    assert o.occ is not None and o.item is not None
    occ, item = o.occ, o.item
    pos, total = q.progress(study, occ.study_day, o.answers, item)
    current = o.answers.get(item.code)
    rows: list[tuple[Choice, ...]] = []
    done: Choice | None = None
    typed = so_far = hint = ""
    if item.kind in ("single", "multi"):
        verb = TOGGLE if item.kind == "multi" else ANSWER
        chosen = set((current or "").split(","))
        for opt in item.options:
            act = Action(verb, occ.id, item.code, opt.code)
            rows.append((Choice(_(opt.text), act, opt.code in chosen),))
        if item.kind == "multi":
            done = Choice(_("Done"), Action(DONE, occ.id, item.code))
    elif item.kind in ("scale", "count"):
        assert item.min is not None and item.max is not None
        values = list(range(int(item.min), int(item.max) + 1))
        per_row = 6 if item.kind == "scale" else 4
        for start in range(0, len(values), per_row):
            row = []
            for v in values[start : start + per_row]:
                label = f"{v}+" if item.kind == "count" and v == int(item.max) else str(v)
                act = Action(ANSWER, occ.id, item.code, str(v))
                row.append(Choice(label, act, current == str(v)))
            rows.append(tuple(row))
    else:
        typed = item.kind
        if current is not None:
            so_far = _("Your answer so far: {value}", value=value_text(_, item, current))
        if item.kind == "number":
            assert item.min is not None and item.max is not None
            lo, hi = _fmt(item.min, True), _fmt(item.max, True)
            hint = _("Type a number from {min} to {max}.", min=lo, max=hi)
        else:
            hint = _("Type your answer (up to {max} characters).", max=study.max_free_text)
    return Screen(
        "question",
        header=header(_, occ),
        progress=_("Question {pos} of {total}", pos=pos, total=total),
        pos=pos,
        total=total,
        text=_(item.question(occ.form)),
        item=item.code,
        occ_id=occ.id,
        multi=item.kind == "multi",
        rows=tuple(rows),
        done=done,
        typed=typed,
        so_far=so_far,
        hint=hint,
        max_length=study.max_free_text if item.kind == "text" else 0,
        back=Action(BACK, occ.id, item.code) if pos > 1 else None,
    )


def review_screen(_: T, study: Study, o: Outcome) -> Screen:
    assert o.occ is not None
    occ = o.occ
    lines = []
    for code, raw in o.answers.items():
        item = study.item(code)
        label = _(item.short)
        line = _("{label}: {value}", label=label, value=value_text(_, item, raw))
        lines.append(ReviewLine(label, line, Action(CHANGE, occ.id, code)))
    return Screen(
        "review",
        header=header(_, occ),
        occ_id=occ.id,
        intro=_("Please check your answers:"),
        answers=tuple(lines),
        outro=_("Tap an answer to change it, or Submit when everything is right."),
        submit=Choice(_("Submit"), Action(SUBMIT, occ.id)),
        back=Action(BACK, occ.id) if lines else None,
    )


def next_due(_: T, patient: Patient, nxt: OccRow | None) -> str:
    # Paused or ended follow-ups have no "next diary" to announce (bot/followup/lifecycle.py).
    if patient.status == "paused":
        return _("Your diary is paused for now. The study team will tell you when it restarts.")
    if patient.status in ("withdrawn", "completed"):
        return _("There are no more diaries planned for you.")
    if nxt is None:
        return _("There are no more diaries planned for you.")
    return _(
        "Your next diary opens on {date} at {time}.",
        date=_.date(nxt.local_date),
        time=_.clock(nxt.opens_at, patient.timezone),
    )


def submitted(_: T, patient: Patient, o: Outcome) -> str:
    return "\n".join([_("Thank you! Your diary has been saved."), next_due(_, patient, o.next_occ)])


def status_text(_: T, patient: Patient, o: Outcome) -> str:
    """Refusals and states that are not a question: closed, done, not open, stale, forged."""
    if o.status == "already_done":
        return "\n".join(
            [_("This diary is already done. Thank you!"), next_due(_, patient, o.next_occ)]
        )
    if o.status == "closed":
        return "\n".join(
            [
                _("This diary is closed now, so it can no longer be filled in. That's all right."),
                next_due(_, patient, o.next_occ),
            ]
        )
    if o.status == "not_open":
        return "\n".join(
            [_("There is no diary to fill in right now."), next_due(_, patient, o.next_occ)]
        )
    if o.status == "stale":
        return _("That button belongs to an earlier screen. Please use the latest message.")
    if o.status == "not_yours":
        return _("This is not available.")
    return ""


def error_text(_: T, study: Study, o: Outcome) -> str:
    item = o.item
    msgid = ERRORS.get(o.error or "", ERRORS["use_buttons"])
    number = bool(item and item.kind == "number")
    lo = _fmt(item.min, number) if item and item.min is not None else ""
    hi = _fmt(item.max, number) if item and item.max is not None else ""
    example = "38.5" if item and item.kind == "number" else "3"
    return _(
        msgid, min=lo, max=hi if o.error != "too_long" else study.max_free_text, example=example
    )


def _fmt(v: float, one_decimal: bool = False) -> str:
    if one_decimal:  # a typed temperature: the same "35.0 to 43.0" as the question's hint
        return f"{v:.1f}"
    return str(int(v)) if float(v).is_integer() else str(v)


def screen(_: T, study: Study, patient: Patient, o: Outcome) -> Screen:
    """The screen for any outcome of a diary step."""
    if o.status in ("question", "updated"):
        return question_screen(_, study, o)
    if o.status == "review":
        return review_screen(_, study, o)
    if o.status == "submitted":
        return Screen("message", text=submitted(_, patient, o))
    if o.status == "invalid":
        return Screen("message", text=error_text(_, study, o))
    return Screen("message", text=status_text(_, patient, o))


async def perform(
    svc: DiaryService, patient: Patient, action: Action, *, respond: Respond | None = None
) -> Outcome:
    """Do what a tap means, for any channel. An action without its arguments changes nothing."""
    occ, item, code = action.occ_id, action.item, action.code
    if action.verb == START:
        return await svc.open(patient, occ, respond=respond)
    if action.verb == ANSWER and item and code:
        return await svc.answer(patient, occ, item, code, respond=respond)
    if action.verb == TOGGLE and item and code:
        return await svc.toggle(patient, occ, item, code, respond=respond)
    if action.verb == DONE and item:
        return await svc.multi_done(patient, occ, item, respond=respond)
    if action.verb == CHANGE and item:
        return await svc.change(patient, occ, item, respond=respond)
    if action.verb == SUBMIT:
        return await svc.submit(patient, occ, respond=respond)
    if action.verb == BACK:
        return await svc.back(patient, occ, item or None, respond=respond)
    return Outcome("not_yours")
