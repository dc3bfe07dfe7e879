"""What the diary looks like: question, review and closing screens as (text, buttons)."""

from __future__ import annotations

from bot.domain import questionnaire as q
from bot.domain.study import Item, Study
from bot.i18n import N_, T
from bot.messenger import Buttons
from bot.services.diary import Outcome
from conversations.callbacks import make
from storage.repo import OccRow, Patient

CHECK = "✅ "
BOX = "⬜ "
TICK = "✓ "

# Explanations for refused typed input (InputError codes).
ERRORS = {
    "not_a_number": N_("Please type a number, for example {example}."),
    "whole_number": N_("Please type a whole number from {min} to {max}."),
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


def question(_: T, study: Study, o: Outcome) -> tuple[str, Buttons]:
    assert o.occ is not None and o.item is not None
    occ, item = o.occ, o.item
    pos, total = q.progress(study, occ.study_day, o.answers, item)
    lines = [
        header(_, occ),
        _("Question {pos} of {total}", pos=pos, total=total),
        "",
        _(item.question(occ.form)),
    ]
    current = o.answers.get(item.code)
    buttons: Buttons = []
    if item.kind == "single":
        for opt in item.options:
            mark = TICK if current == opt.code else ""
            buttons.append([(mark + _(opt.text), make("d", "a", occ.id, item.code, opt.code))])
    elif item.kind == "multi":
        chosen = set((current or "").split(","))
        for opt in item.options:
            mark = CHECK if opt.code in chosen else BOX
            buttons.append([(mark + _(opt.text), make("d", "t", occ.id, item.code, opt.code))])
        buttons.append([(_("Done"), make("d", "n", occ.id, item.code))])
    elif item.kind in ("scale", "count"):
        assert item.min is not None and item.max is not None
        values = list(range(int(item.min), int(item.max) + 1))
        per_row = 6 if item.kind == "scale" else 4
        for start in range(0, len(values), per_row):
            row = []
            for v in values[start : start + per_row]:
                label = f"{v}+" if item.kind == "count" and v == int(item.max) else str(v)
                if current == str(v):
                    label = TICK + label
                row.append((label, make("d", "a", occ.id, item.code, v)))
            buttons.append(row)
    else:
        if current is not None:
            lines += ["", _("Your answer so far: {value}", value=value_text(_, item, current))]
        if item.kind == "number":
            lines += ["", _("Type a number from {min} to {max}.", min=item.min, max=item.max)]
        else:
            lines += ["", _("Type your answer (up to {max} characters).", max=study.max_free_text)]
    return "\n".join(lines), buttons


def review(_: T, study: Study, o: Outcome) -> tuple[str, Buttons]:
    assert o.occ is not None
    occ = o.occ
    lines = [header(_, occ), _("Please check your answers:"), ""]
    buttons: Buttons = []
    row: list[tuple[str, str]] = []
    for code, raw in o.answers.items():
        item = study.item(code)
        lines.append(
            "• " + _("{label}: {value}", label=_(item.short), value=value_text(_, item, raw))
        )
        row.append(("✏️ " + _(item.short), make("d", "e", occ.id, code)))
        if len(row) == 2:
            buttons.append(row)
            row = []
    if row:
        buttons.append(row)
    lines += ["", _("Tap an answer to change it, or Submit when everything is right.")]
    buttons.append([(_("Submit"), make("d", "x", occ.id))])
    return "\n".join(lines), buttons


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
    lo = _fmt(item.min) if item and item.min is not None else ""
    hi = _fmt(item.max) if item and item.max is not None else ""
    example = "38.5" if item and item.kind == "number" else "3"
    return _(
        msgid, min=lo, max=hi if o.error != "too_long" else study.max_free_text, example=example
    )


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def prompt(_: T, occ: OccRow, *, reminder: bool = False) -> tuple[str, Buttons]:
    if reminder:
        text = _("A gentle reminder: today's diary is still open. It takes about a minute.")
    elif occ.form == "weekly":
        text = _("Time for your weekly diary. It takes about a minute.")
    else:
        text = _("Time for today's diary. It takes about a minute.")
    return f"{header(_, occ)}\n{text}", [[(_("Start"), make("d", "s", occ.id))]]
