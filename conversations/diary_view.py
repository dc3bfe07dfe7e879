"""The diary in Telegram: a thin renderer of the channel-neutral `Screen`
(bot/services/diary_screen.py) as (text, inline buttons). The web renders the same screens
(bot/web/templates/diary.html)."""

from __future__ import annotations

from bot.domain.study import Study
from bot.i18n import T
from bot.messenger import Buttons
from bot.services import diary_screen as screen
from bot.services.diary import Outcome
from bot.services.diary_screen import (  # the texts are shared with the web (re-exported)
    ERRORS,
    Action,
    Choice,
    Screen,
    error_text,
    header,
    next_due,
    status_text,
    submitted,
    value_text,
)
from conversations.callbacks import make
from storage.repo import OccRow

__all__ = [
    "ERRORS",
    "buttons_for",
    "error_text",
    "header",
    "next_due",
    "prompt",
    "question",
    "review",
    "status_text",
    "submitted",
    "text_for",
    "value_text",
]

CHECK = "✅ "
BOX = "⬜ "
TICK = "✓ "


def buttons_for(s: Screen) -> Buttons:
    """A screen's choices as inline buttons: the action is the callback data."""

    def data(a: Action) -> str:
        return make("d", a.verb, *a.args())

    buttons: Buttons = []

    def mark(c: Choice) -> str:
        if s.multi:
            return CHECK if c.selected else BOX
        return TICK if c.selected else ""

    for choices in s.rows:
        buttons.append([(mark(c) + c.label, data(c.action)) for c in choices])
    if s.done is not None:
        buttons.append([(s.done.label, data(s.done.action))])
    if s.kind == "review":
        row: list[tuple[str, str]] = []
        for a in s.answers:
            row.append(("✏️ " + a.label, data(a.change)))
            if len(row) == 2:
                buttons.append(row)
                row = []
        if row:
            buttons.append(row)
        if s.submit is not None:
            buttons.append([(s.submit.label, data(s.submit.action))])
    return buttons


def text_for(s: Screen) -> str:
    if s.kind == "question":
        lines = [s.header, s.progress, "", s.text]
        if s.so_far:
            lines += ["", s.so_far]
        if s.hint:
            lines += ["", s.hint]
        return "\n".join(lines)
    if s.kind == "review":
        lines = [s.header, s.intro, ""]
        lines += ["• " + a.line for a in s.answers]
        lines += ["", s.outro]
        return "\n".join(lines)
    return s.text


def question(_: T, study: Study, o: Outcome) -> tuple[str, Buttons]:
    s = screen.question_screen(_, study, o)
    return text_for(s), buttons_for(s)


def review(_: T, study: Study, o: Outcome) -> tuple[str, Buttons]:
    s = screen.review_screen(_, study, o)
    return text_for(s), buttons_for(s)


def prompt(_: T, occ: OccRow, *, reminder: bool = False) -> tuple[str, Buttons]:
    if reminder:
        text = _("A gentle reminder: your diary is still open. It takes about a minute.")
    elif occ.form == "weekly":
        text = _("Time for your weekly diary. It takes about a minute.")
    else:
        text = _("Time for today's diary. It takes about a minute.")
    return f"{header(_, occ)}\n{text}", [[(_("Start"), make("d", "s", occ.id))]]
