"""Replies that live inside handlers, captured from a real bot for the screens page.

Most screens are drawn by view functions (`screens.py`). A few short replies are written in the
handlers themselves — a wrong enrolment code, an edited message, the settings questions, a
refused button. Rather than copy their text here (a copy would drift from the code), a scratch
sandbox plays a short script once per language and records what the bot answered; the page
shows those answers side by side like every other screen.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from bot.domain.study import Study
from bot.i18n import T
from bot.sandbox.screens import LOCALES, Provider, Rendered, Samples, Screen
from bot.sandbox.world import Sandbox

GROUP = "Replies written in handlers (captured from the bot)"
PATIENT = 701  # the phone that plays the script
OTHER = 702  # a second phone, for a code that is already used or expired
TEAM_GROUP = -1009000000001
START = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: no diary is open
WRONG_CODE = "WRONG23456"

Act = Callable[[Sandbox, "Player"], Awaitable[None]]


@dataclass(frozen=True)
class Step:
    key: str | None  # None: a step that only sets the scene (not listed)
    when: str
    act: Act
    last_only: bool = False  # list only the last reply (the step repeats an action)


@dataclass
class Player:
    """The scripted phones and what the study team set up for them."""

    locale: str
    codes: dict[str, str]
    settings_message: int = 0

    @property
    def lang(self) -> str:
        return "en" if self.locale == "en" else "zh_Hans"


async def _enrol(sb: Sandbox, p: Player, subject: str, user_id: int) -> None:
    invite = await sb.enroll(subject, date(2026, 12, 20), p.lang, time(20, 0), user_id=user_id)
    p.codes[subject] = invite.code


async def _wrong_codes(sb: Sandbox, p: Player) -> None:
    # The fifth wrong code in a row locks the phone out; the sixth is answered with the pause.
    for _ in range(5):
        await sb.send_text(PATIENT, WRONG_CODE)


async def _expire(sb: Sandbox, p: Player) -> None:
    await _enrol(sb, p, "RP-EXP", OTHER)
    await sb.advance(timedelta(days=15))  # the code was valid 14 days; the lock-out is over too


async def _link(sb: Sandbox, p: Player) -> None:
    await _enrol(sb, p, "RP-USE", PATIENT)
    await sb.send_text(PATIENT, f"/start {p.codes['RP-USE']}")


async def _settings(sb: Sandbox, p: Player) -> None:
    await sb.send_text(PATIENT, "/settings")
    p.settings_message = sb.api.messages(PATIENT)[-1].message_id


async def _press_settings(sb: Sandbox, p: Player, data: str) -> None:
    await sb.press(PATIENT, p.settings_message, data)


async def _edit(sb: Sandbox, p: Player) -> None:
    mine = [mid for (cid, mid) in sb.api.state.user_messages if cid == PATIENT]
    await sb.edit_text(PATIENT, max(mine), "edited")


def _say(text: str, user: int = PATIENT) -> Act:
    async def act(sb: Sandbox, p: Player) -> None:
        await sb.send_text(user, text)

    return act


def _tap(data: str) -> Act:
    async def act(sb: Sandbox, p: Player) -> None:
        await _press_settings(sb, p, data)

    return act


SCRIPT: tuple[Step, ...] = (
    Step("stranger.start", "/start without a code, from someone not enrolled", _say("/start")),
    Step("stranger.text", "Any text from someone not enrolled", _say("hello")),
    Step("stranger.diary", "/diary from someone not enrolled", _say("/diary")),
    Step("code.wrong", "A code that does not exist", _say(WRONG_CODE)),
    Step(
        "code.locked",
        "A code after five wrong ones in a row (15 minutes' pause)",
        _wrong_codes,
        True,
    ),
    Step(None, "", _expire),
    Step(
        "code.expired",
        "A code older than its validity",
        lambda sb, p: _say(f"/start {p.codes['RP-EXP']}", OTHER)(sb, p),
    ),
    Step(None, "", _link),
    Step(
        "code.used",
        "A code that another phone already used",
        lambda sb, p: _say(f"/start {p.codes['RP-USE']}", OTHER)(sb, p),
    ),
    Step("text.no_diary", "Text from a patient when no diary is waiting for it", _say("hello")),
    Step("command.unknown", "A command the bot does not know", _say("/weather")),
    Step("message.edited", "The patient edits a message they sent", _edit),
    Step(
        "message.other",
        "A photo, sticker, voice or location",
        lambda sb, p: sb.send_location(PATIENT),
    ),
    Step(
        "group.message",
        "A command in a group chat (the study team's group excepted)",
        lambda sb, p: sb.send_in_group(PATIENT, TEAM_GROUP, "/help"),
    ),
    Step(None, "", _settings),
    Step("settings.language", "/settings → Language", _tap("s:lang")),
    Step("settings.time", "/settings → Reminder time", _tap("s:time")),
    Step("settings.time.bad", "A reminder time that is not HH:MM", _say("25:99")),
    Step("settings.time.saved", "A new reminder time, typed", _say("21:30")),
    Step("settings.timezone", "/settings → Time zone", _tap("s:tz")),
    Step("settings.timezone.bad", "A time zone that does not exist", _say("Mars/Olympus")),
    Step("button.refused", "A button that is forged or no longer valid", _tap("zz:1")),
)


Said = tuple[str, Rendered]  # ("message" | "toast", what it showed)


async def _play(sb: Sandbox, locale: str) -> dict[str, list[Said]]:
    """Play the script; per step, what the bot said or changed (new texts, edits, toasts)."""
    client = "en" if locale == "en" else "zh-hans"
    for user in (PATIENT, OTHER):
        sb.names[user] = "Patient"
        sb.clients[user] = client
    player = Player(locale, {})
    chats = (PATIENT, OTHER, TEAM_GROUP)
    out: dict[str, list[Said]] = {}
    for step in SCRIPT:
        before = {(c, m.message_id): m.edits for c in chats for m in sb.api.messages(c) if m.text}
        toasts = len(sb.api.callback_answers())
        await step.act(sb, player)
        said: list[Said] = []
        for chat in chats:
            for m in sb.api.messages(chat):
                old = before.get((chat, m.message_id))
                if m.text and (old is None or m.edits > old):
                    buttons = [[(label, data or "") for label, data in row] for row in m.buttons]
                    said.append(("message", (m.text, buttons)))
        answers = sb.api.callback_answers()[toasts:]
        said += [("toast", a["text"]) for a in answers if a.get("text")]
        if step.key is not None:
            out[step.key] = said[-1:] if step.last_only else said
    return out


async def capture(study: Study) -> Provider:
    """Run the script in a scratch sandbox per language; returns a screens provider."""
    results: dict[str, dict[str, list[Said]]] = {}
    for locale in LOCALES:
        with tempfile.TemporaryDirectory(prefix="diarybot-replies-") as tmp:
            sb = Sandbox(Path(tmp) / "replies.sqlite3", study, START)
            try:
                await sb.start()
                sb.ready = True
                results[locale] = await _play(sb, locale)
            finally:
                await sb.stop()

    def provider(samples: Samples) -> Iterable[Screen]:
        for step in SCRIPT:
            if step.key is None:
                continue
            said = {locale: results[locale][step.key] for locale in LOCALES}
            for i in range(max(len(x) for x in said.values())):
                key = f"replies.{step.key}" + (f".{i + 1}" if i else "")
                toast = any(i < len(x) and x[i][0] == "toast" for x in said.values())
                when = step.when + (" (a pop-up over the chat)" if toast else "")
                yield Screen(key, GROUP, when, _pick(said, i))

    return provider


def _pick(said: dict[str, list[Said]], i: int) -> Callable[[T], Rendered]:
    def render(_: T) -> Rendered:
        replies = said[_.locale]
        return replies[i][1] if i < len(replies) else "(no reply in this language)"

    return render
