"""Replies that live inside handlers, captured from a real bot for the screens page.

Most screens are drawn by view functions (`screens.py`). A few short replies are written in the
handlers themselves — a wrong enrolment code, an edited message, the settings questions, a
refused button, "I made a mistake", the study team's taps on an alert and their commands with
their confirmations and refusals. Rather than copy their text here (a copy would drift from the
code), a scratch sandbox plays a short script once per language and records what the bot
answered; the page shows those answers side by side like every other screen.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from bot.domain.study import Study
from bot.i18n import T
from bot.sandbox.player import fill_diary
from bot.sandbox.screens import (
    LOCALES,
    SAMPLE_TEXT,
    Provider,
    Rendered,
    Samples,
    Screen,
    sample_value,
)
from bot.sandbox.world import Sandbox, SandboxError

GROUP = "Replies written in handlers (captured from the bot)"
PATIENT = 701  # the phone that plays the script
OTHER = 702  # a second phone, for a code that is already used or expired
TEAM_GROUP = -1009000000001
STAFF = 703  # a coordinator: gets every alert, runs the staff commands
STAFF2 = 704  # a second coordinator, one step behind the first
ADMIN = 705  # an admin: may look and enrol, not take clinical or study decisions
START = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: no diary is open
WRONG_CODE = "WRONG23456"
MENU = "command.menu"  # not a step: the command menu the bot set up when it started

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
    diary: int = 0  # the occurrence the patient submitted
    alert: int = 0  # the urgent alert that diary raised
    confirmed: tuple[int, str] = (0, "")  # the confirmation message and button last tapped

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


async def _staff(sb: Sandbox, p: Player) -> None:
    await sb.add_staff(STAFF, "coordinator", "Wang Fang", p.lang)
    await sb.add_staff(STAFF2, "coordinator", "Li Na", p.lang)
    await sb.add_staff(ADMIN, "admin", "Admin", p.lang)


async def _urgent_diary(sb: Sandbox, p: Player) -> None:
    """The patient fills in the next diary with answers that raise an urgent alert."""
    if await sb.to_next_prompt() is None:
        raise SandboxError("no diary is planned")
    answers = {it.code: sample_value(sb.study, it) for it in sb.study.items}
    p.diary = await fill_diary(sb, PATIENT, answers)
    alert = await sb.bot.rt.db.scalar("SELECT MAX(id) FROM alerts WHERE level = 'urgent'")
    if alert is None:
        raise SandboxError("the diary raised no urgent alert")
    p.alert = int(alert)


def _press_on(user: int, data: Callable[[Player], str]) -> Act:
    """`user` taps a button with this data on the newest message of their chat that concerns
    the same thing (an alert card, the thank-you of a diary, a confirmation)."""

    async def act(sb: Sandbox, p: Player) -> None:
        wanted = data(p)
        area, _verb, *args = wanted.split(":")
        # A button of the same area and object (`al:<any verb>:<alert id>`): a tap of a button
        # the message no longer shows, as from an old copy.
        target = "".join(f":{re.escape(a)}" for a in args[:1])
        same = re.compile(rf"{re.escape(area)}:\w+{target}(:|$)")
        for m in reversed(sb.api.messages(user)):
            if any(d and (d == wanted or same.match(d)) for _, d in m.flat_buttons):
                await sb.press(user, m.message_id, wanted)
                return
        raise SandboxError(f"no message with a {wanted} button in chat {user}")

    return act


def _confirmation(user: int, verb: str) -> Act:
    """`user` taps Confirm (`ok`) or Cancel (`no`) under the newest confirmation question, or
    (`again`) the last button tapped there once more."""

    async def act(sb: Sandbox, p: Player) -> None:
        if verb == "again":
            await sb.press(user, *p.confirmed)
            return
        for m in reversed(sb.api.messages(user)):
            for _, d in m.flat_buttons:
                if d and d.startswith("fu:no:"):
                    p.confirmed = (m.message_id, f"fu:{verb}:{d.split(':')[2]}")
                    await sb.press(user, *p.confirmed)
                    return
        raise SandboxError(f"no confirmation in chat {user}")

    return act


def _alert_button(verb: str, user: int = STAFF, choice: str = "") -> Act:
    return _press_on(user, lambda p: f"al:{verb}:{p.alert}" + (f":{choice}" if choice else ""))


SCRIPT: tuple[Step, ...] = (
    Step(None, "", _staff),
    Step(
        "staff.compliance.empty",
        "/compliance before any patient has joined",
        _say("/compliance", STAFF),
    ),
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
    # The patient's "I made a mistake", and the study team's answers to an urgent alert.
    Step(None, "", _say("Asia/Shanghai")),  # answers the time zone question still open
    Step(None, "", _urgent_diary),
    Step(
        "mistake.ask",
        "The patient taps “I made a mistake” under a submitted diary",
        _press_on(PATIENT, lambda p: f"dc:new:{p.diary}"),
    ),
    Step("mistake.cancel", "… and then Cancel", _press_on(PATIENT, lambda p: "dc:cancel")),
    Step(None, "", _press_on(PATIENT, lambda p: f"dc:new:{p.diary}")),
    Step(
        "mistake.sent",
        "The patient describes the mistake (the study team gets a data-change alert)",
        _say(SAMPLE_TEXT),
    ),
    Step(
        "alert.note_too_early",
        "A note asked for on an alert nobody has acknowledged (an old copy's button)",
        _alert_button("note"),
    ),
    Step("alert.ack", "A coordinator taps Acknowledge", _alert_button("ack")),
    Step(
        "alert.ack.again",
        "Another coordinator taps Acknowledge on their copy a moment later",
        _alert_button("ack", STAFF2),
    ),
    Step(
        "alert.triage",
        "Triage: Possible SAE (the bot offers a note)",
        _alert_button("tri", choice="s"),
    ),
    Step("alert.note", "The note, typed", _say("已电话联系 / phoned the patient", STAFF)),
    Step(
        "alert.triage.again",
        "Another coordinator triages on their copy after the first",
        _alert_button("tri", STAFF2, "n"),
    ),
    Step("alert.reported", "Reported to sponsor", _alert_button("sae")),
    Step(
        "alert.closed",
        "Acknowledge on a copy of an alert that is closed",
        _alert_button("ack", STAFF2),
    ),
    # The study team's commands: what they answer, ask to confirm, or refuse.
    Step("staff.schedule", "/schedule from a member of the study team", _say("/schedule", STAFF)),
    Step("staff.compliance", "/compliance", _say("/compliance", STAFF)),
    Step(
        "staff.compliance.unknown",
        "/compliance of a subject that does not exist",
        _say("/compliance RP-404", STAFF),
    ),
    Step("staff.patient.usage", "/patient without a subject", _say("/patient", STAFF)),
    Step("staff.enroll.usage", "/enroll written wrongly", _say("/enroll RP-009", STAFF)),
    Step(
        "staff.enroll.bad_subject",
        "/enroll with a subject ID that has a space or symbol",
        _say("/enroll RP#9 2026-12-28 en", STAFF),
    ),
    Step(
        "staff.enroll.bad_date",
        "/enroll with a date that is not YYYY-MM-DD",
        _say("/enroll RP-009 28.12.2026 en", STAFF),
    ),
    Step(
        "staff.enroll.bad_language",
        "/enroll with a language other than zh or en",
        _say("/enroll RP-009 2026-12-28 fr", STAFF),
    ),
    Step(
        "staff.enroll.exists",
        "/enroll of a subject already enrolled",
        _say("/enroll RP-USE 2026-12-28 en", STAFF),
    ),
    Step(
        "staff.enroll",
        "/enroll done: the code to give the patient",
        _say("/enroll RP-009 2026-12-28 en", STAFF),
    ),
    Step(
        "staff.role",
        "/pause from an admin (a study decision their role may not take)",
        _say("/pause RP-USE", ADMIN),
    ),
    Step(
        "staff.pause.not_joined",
        "/pause of a patient who has not joined yet",
        _say("/pause RP-009", STAFF),
    ),
    Step(
        "staff.resume.active",
        "/resume of a patient who is not paused",
        _say("/resume RP-USE", STAFF),
    ),
    Step(None, "", _say("/pause RP-USE", STAFF)),
    Step("staff.pause.again", "/pause of a patient already paused", _say("/pause RP-USE", STAFF)),
    Step(None, "", _say("/resume RP-USE", STAFF)),
    Step(
        "staff.reanchor.bad_date",
        "/reanchor with a date that is not YYYY-MM-DD",
        _say("/reanchor RP-USE 27.12.2026", STAFF),
    ),
    Step(
        "staff.reanchor.same",
        "/reanchor to the Day 0 the patient already has",
        _say("/reanchor RP-USE 2026-12-20", STAFF),
    ),
    Step(
        "staff.reanchor.too_early",
        "/reanchor to a date so early the follow-up would be over",
        _say("/reanchor RP-USE 2020-01-01", STAFF),
    ),
    Step(
        "staff.reanchor",
        "/reanchor: the question to confirm",
        _say("/reanchor RP-USE 2026-12-27", STAFF),
    ),
    Step("staff.confirm.cancel", "… Cancel", _confirmation(STAFF, "no")),
    Step(
        "staff.confirm.stale",
        "A confirmation button tapped again after it was answered",
        _confirmation(STAFF, "again"),
    ),
    Step("staff.withdraw", "/withdraw: the question to confirm", _say("/withdraw RP-USE", STAFF)),
    Step("staff.withdraw.done", "… Confirm (the patient is told)", _confirmation(STAFF, "ok")),
    Step("staff.pause.withdrawn", "/pause of a withdrawn patient", _say("/pause RP-USE", STAFF)),
)


Said = tuple[str, Rendered]  # ("message" | "toast", what it showed)


async def _play(sb: Sandbox, locale: str) -> dict[str, list[Said]]:
    """Play the script; per step, what the bot said or changed (new texts, edits, toasts)."""
    client = "en" if locale == "en" else "zh-hans"
    for user in (PATIENT, OTHER):
        sb.names[user] = "Patient"
        sb.clients[user] = client
    player = Player(locale, {})
    for user, name in ((STAFF, "Wang Fang"), (STAFF2, "Li Na"), (ADMIN, "Admin")):
        sb.names[user] = name
        sb.clients[user] = client
    chats = (PATIENT, OTHER, TEAM_GROUP, STAFF, STAFF2, ADMIN)
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
        # Each coordinator gets a copy of an alert: list each different text once.
        said = _once(said)
        if step.key is not None:
            out[step.key] = said[-1:] if step.last_only else said
    out[MENU] = [("message", (_menu(sb, client), []))]
    return out


def _menu(sb: Sandbox, client: str) -> str:
    """The command menu a phone in this language shows: the list the bot set for its language,
    else the default list (as Telegram chooses)."""
    menus = {}
    for key, commands in sb.api.state.commands.items():
        scope, code = json.loads(key)
        if scope.get("type") == "default":
            menus[code] = commands
    commands = menus.get(client.split("-")[0], menus.get("", []))
    return "\n".join(f"/{c['command']} – {c['description']}" for c in commands)


def _once(said: list[Said]) -> list[Said]:
    """`said` without repeats (the same text shown in several chats)."""
    seen: set[str] = set()
    out = []
    for x in said:
        if repr(x) not in seen:
            seen.add(repr(x))
            out.append(x)
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
        steps = [(step.key, step.when) for step in SCRIPT if step.key is not None]
        for name, note in [*steps, (MENU, "The command menu (the / button by the text box)")]:
            said = {locale: results[locale][name] for locale in LOCALES}
            for i in range(max(len(x) for x in said.values())):
                key = f"replies.{name}" + (f".{i + 1}" if i else "")
                toast = any(i < len(x) and x[i][0] == "toast" for x in said.values())
                when = note + (" (a pop-up over the chat)" if toast else "")
                yield Screen(key, GROUP, when, _pick(said, i))

    return provider


def _pick(said: dict[str, list[Said]], i: int) -> Callable[[T], Rendered]:
    def render(_: T) -> Rendered:
        replies = said[_.locale]
        return replies[i][1] if i < len(replies) else "(no reply in this language)"

    return render
