"""Tests of the local Bot API server, driven by the real python-telegram-bot stack.

Everything goes through PTB's ``Application``/``Bot`` and its HTTPX request layer, so these tests
also prove that the JSON shapes and error codes are the ones PTB parses in production.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.localapi import Faults, LocalBotApi, SentMessage
from bot.localapi.faults import FaultEngine

PATIENT = 111
OTHER = 222
GROUP = -1001234


@pytest.fixture
async def api() -> AsyncIterator[LocalBotApi]:
    server = LocalBotApi(seed=1)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: LocalBotApi) -> AsyncIterator[Bot]:
    """A bare PTB Bot (no polling) for calling methods directly."""
    async with Bot("123:TEST", base_url=api.base_url, base_file_url=api.base_file_url) as b:
        yield b


class Seen:
    """What the handlers of the demo bot observed."""

    def __init__(self) -> None:
        self.callback_texts: list[tuple[str | None, str | None, str | None]] = []


DemoApp = tuple[Application[Any, Any, Any, Any, Any, Any], Seen]


@pytest.fixture
async def app(api: LocalBotApi) -> AsyncIterator[DemoApp]:
    """A tiny real bot: echoes text, /start shows a keyboard, button presses edit it."""
    seen = Seen()
    application = (
        ApplicationBuilder()
        .token("123:TEST")
        .base_url(api.base_url)
        .base_file_url(api.base_file_url)
        .build()
    )

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"echo: {update.effective_message.text}")

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Yes 是", callback_data="ans:yes"),
                    InlineKeyboardButton("No 否", callback_data="ans:no"),
                ]
            ]
        )
        await update.effective_message.reply_text(
            "<b>Pick</b> one", parse_mode=ParseMode.HTML, reply_markup=keyboard
        )

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        text = getattr(query.message, "text", None)
        html = getattr(query.message, "text_html", None) if text is not None else None
        seen.callback_texts.append((query.data, text, html))
        await query.answer(f"saved {query.data}")
        await query.edit_message_text(f"You chose <i>{query.data}</i>", parse_mode=ParseMode.HTML)

    application.add_handler(CommandHandler("start", start))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    application.add_handler(CallbackQueryHandler(on_button))
    await application.initialize()
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        yield application, seen
    finally:
        await application.updater.stop()
        await application.stop()
        await application.shutdown()


# --------------------------------------------------------------------------- through polling


async def test_echo_round_trip(api: LocalBotApi, app: DemoApp) -> None:
    sent = api.send_text(PATIENT, "头痛 2/10", first_name="Li")
    assert sent["from"] == {
        "id": PATIENT,
        "is_bot": False,
        "first_name": "Li",
        "language_code": "zh-hans",
    }

    reply = await api.wait_for_message(PATIENT)

    assert reply.text == "echo: 头痛 2/10"
    assert reply.chat_id == PATIENT
    assert api.messages(PATIENT) == [reply]
    assert api.messages(OTHER) == []
    await api.wait_updates_consumed()
    assert api.pending_updates == 0
    assert api.stats["call:getMe"] == 1
    assert api.stats["call:sendMessage"] == 1
    assert api.stats["sent"] == 1


async def test_group_chat_message(api: LocalBotApi, app: DemoApp) -> None:
    api.send_text(PATIENT, "hi group", chat_id=GROUP, chat_type="supergroup")
    reply = await api.wait_for_message(GROUP)
    assert reply.text == "echo: hi group"
    assert api.messages(PATIENT) == []


async def test_button_press_answers_and_edits(
    api: LocalBotApi,
    app: DemoApp,
) -> None:
    _, seen = app
    api.send_text(PATIENT, "/start")
    menu = await api.wait_for_message(PATIENT)
    assert menu.text == "<b>Pick</b> one"
    assert menu.parse_mode == "HTML"
    assert menu.buttons == [[("Yes 是", "ans:yes"), ("No 否", "ans:no")]]

    query_id = api.press(PATIENT, menu.message_id, menu.button_data("是"))
    edited = await api.wait_for_edit(PATIENT, menu.message_id, lambda m: m.edits == 1)

    assert edited is menu
    assert edited.text == "You chose <i>ans:yes</i>"
    assert edited.history == ["<b>Pick</b> one"]
    assert edited.buttons == []  # an edit without reply_markup drops the keyboard, as Telegram
    # PTB saw the message as Telegram renders it: plain text plus entities.
    assert seen.callback_texts == [("ans:yes", "Pick one", "<b>Pick</b> one")]
    await api.wait_until(lambda: len(api.callback_answers()) == 1)
    assert api.callback_answers() == [
        {"callback_query_id": query_id, "text": "saved ans:yes", "show_alert": False}
    ]


async def test_forged_callback_data_is_delivered(
    api: LocalBotApi,
    app: DemoApp,
) -> None:
    _, seen = app
    api.send_text(PATIENT, "/start")
    menu = await api.wait_for_message(PATIENT)
    api.press(PATIENT, menu.message_id, "not-a-button")
    await api.wait_for_edit(PATIENT, menu.message_id, lambda m: m.edits == 1)
    assert seen.callback_texts[0][0] == "not-a-button"


async def test_wait_for_message_reports_chat_on_timeout(api: LocalBotApi, bot: Bot) -> None:
    await bot.send_message(PATIENT, "first")
    with pytest.raises(AssertionError, match=r"(?s)no matching bot message.*'first'"):
        await api.wait_for_message(PATIENT, lambda m: m.text == "never", after=0, timeout=0.2)
    found = await api.wait_for_message(PATIENT, lambda m: m.text == "first", after=0)
    assert found.text == "first"


# --------------------------------------------------------------------------- direct Bot calls


async def test_send_document_and_download(api: LocalBotApi, bot: Bot) -> None:
    content = "日期,评分\n2025-01-01,3\n".encode()
    message = await bot.send_document(
        PATIENT, document=content, filename="diary.csv", caption="export"
    )
    assert message.document is not None
    assert message.document.file_name == "diary.csv"
    assert message.document.file_size == len(content)
    assert message.caption == "export"

    [recorded] = api.messages(PATIENT)
    assert recorded.document == ("diary.csv", content)
    assert recorded.text == "export"

    file = await bot.get_file(message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == content


async def test_send_photo(api: LocalBotApi, bot: Bot) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    message = await bot.send_photo(PATIENT, photo=png, caption="chart")
    assert message.photo and message.caption == "chart"
    assert api.messages(PATIENT)[0].photo == png


async def test_edit_errors_are_bad_requests(api: LocalBotApi, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=PATIENT, message_id=999)

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ok")]])
    message = await bot.send_message(PATIENT, "same", reply_markup=keyboard)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "same", chat_id=PATIENT, message_id=message.message_id, reply_markup=keyboard
        )
    await bot.edit_message_reply_markup(chat_id=PATIENT, message_id=message.message_id)
    assert api.messages(PATIENT)[0].buttons == []

    assert await bot.delete_message(PATIENT, message.message_id)
    assert api.messages(PATIENT)[0].deleted
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("new", chat_id=PATIENT, message_id=message.message_id)


async def test_bad_html_and_oversized_data_rejected(api: LocalBotApi, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can.t parse entities"):
        await bot.send_message(PATIENT, "line<br>break", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)can.t parse entities"):
        await bot.send_message(PATIENT, "pain < 3", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(
            PATIENT,
            "x",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("big", callback_data="x" * 65)]]
            ),
        )
    assert api.messages(PATIENT) == []


async def test_answer_callback_twice_is_refused(api: LocalBotApi, bot: Bot) -> None:
    message = await bot.send_message(PATIENT, "q")
    query_id = api.press(PATIENT, message.message_id, "d")
    assert await bot.answer_callback_query(query_id, text="ok", show_alert=True)
    with pytest.raises(BadRequest, match=r"(?i)query ID is invalid"):
        await bot.answer_callback_query(query_id)
    assert api.callback_answers() == [
        {"callback_query_id": query_id, "text": "ok", "show_alert": True}
    ]


async def test_get_updates_offset_semantics(api: LocalBotApi, bot: Bot) -> None:
    api.send_text(PATIENT, "one")
    first = await bot.get_updates(timeout=0)
    assert [u.message.text for u in first if u.message] == ["one"]
    # Not acknowledged yet: delivered again.
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [first[0].update_id]

    api.send_text(PATIENT, "two")
    after_ack = await bot.get_updates(offset=first[0].update_id + 1, timeout=0)
    assert [u.message.text for u in after_ack if u.message] == ["two"]
    assert api.pending_updates == 1
    assert await bot.get_updates(offset=after_ack[0].update_id + 1, timeout=0) == ()
    assert api.pending_updates == 0


async def test_get_updates_long_poll_returns_early(api: LocalBotApi, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, lambda: api.send_text(PATIENT, "late"))
    # a 60 s long poll that had to run its course would trip the 20 s guard: it returns early
    updates = await asyncio.wait_for(bot.get_updates(timeout=60, read_timeout=70), 20)
    assert [u.message.text for u in updates if u.message] == ["late"]


async def test_user_edit_and_raw_update(api: LocalBotApi, bot: Bot) -> None:
    sent = api.send_text(PATIENT, "score 3")
    api.edit_text(PATIENT, sent["message_id"], "score 4")
    raw_id = api.add_raw_update({"my_chat_member": None})
    updates = await bot.get_updates(timeout=0)
    assert updates[1].edited_message is not None
    assert updates[1].edited_message.text == "score 4"
    assert updates[2].update_id == raw_id


async def test_raw_http_shapes(api: LocalBotApi) -> None:
    root = api.base_url + "123:TEST/"
    async with aiohttp.ClientSession() as session:
        async with session.post(root + "noSuchMethod", json={}) as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found",
            }
        # JSON body with native types (what the browser sandbox sends).
        async with session.post(
            root + "sendMessage",
            json={
                "chat_id": PATIENT,
                "text": "hi",
                "reply_markup": {"inline_keyboard": [[{"text": "a", "url": "https://x.test"}]]},
            },
        ) as response:
            payload = await response.json()
        assert payload["ok"] is True
        assert payload["result"]["from"]["username"] == "nct_diary_bot"
        assert payload["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "a"
    assert api.messages(PATIENT)[0].flat_buttons == [("a", "https://x.test")]


# --------------------------------------------------------------------------- faults


async def test_forbidden_chat(api: LocalBotApi, bot: Bot) -> None:
    api.block(OTHER)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(OTHER, "reminder")
    assert api.messages(OTHER) == []
    assert api.stats["403"] == 1
    await bot.send_message(PATIENT, "others still work")
    api.unblock(OTHER)
    await bot.send_message(OTHER, "reminder")
    assert [m.text for m in api.messages(OTHER)] == ["reminder"]


async def test_flood_limit_429(api: LocalBotApi, bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns (an error under -W error) when RetryAfter.retry_after is an int.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    api.faults.rate_limit_per_second = 2
    api.faults.retry_after_seconds = 3
    await bot.send_message(PATIENT, "1")
    await bot.send_message(OTHER, "2")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(PATIENT, "3")
    assert caught.value.retry_after == dtm.timedelta(seconds=3)
    assert len(api.all_messages()) == 2
    assert api.stats["429"] == 1
    assert api.stats["sent"] == 2


async def test_per_chat_and_group_limits(
    api: LocalBotApi, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    now = [1000.0]  # the flood books run on an injected clock, not on real time
    api.engine = FaultEngine(seed=1, clock=lambda: now[0])
    api.faults = Faults(per_chat_per_second=1, group_per_minute=1)
    await bot.send_message(PATIENT, "a")
    with pytest.raises(RetryAfter):
        await bot.send_message(PATIENT, "b")
    await bot.send_message(OTHER, "other chats are independent")
    await bot.send_message(GROUP, "g1")
    with pytest.raises(RetryAfter):
        await bot.send_message(GROUP, "g2")
    # Refused sends are not counted: once the window passes the chat is free again.
    now[0] += 1.05
    await bot.send_message(PATIENT, "b")
    assert [m.text for m in api.messages(PATIENT)] == ["a", "b"]


async def test_5xx_is_network_error(api: LocalBotApi, bot: Bot) -> None:
    api.faults.error_5xx_fraction = 1.0
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(PATIENT, "x")
    assert api.messages(PATIENT) == []
    assert api.stats["5xx"] == 1
    assert await bot.get_me()  # getMe is never faulted


async def test_drop_is_network_error(api: LocalBotApi, bot: Bot) -> None:
    api.faults.drop_fraction = 1.0
    with pytest.raises(NetworkError):  # TimedOut is a NetworkError too
        await bot.send_message(PATIENT, "x")
    assert api.messages(PATIENT) == []
    assert api.stats["drop"] == 1
    api.faults.drop_fraction = 0.0
    await bot.send_message(PATIENT, "after the drop")
    assert [m.text for m in api.messages(PATIENT)] == ["after the drop"]


async def test_fault_fractions_are_seeded(api: LocalBotApi, bot: Bot) -> None:
    api.faults.error_5xx_fraction = 0.5
    outcomes: list[bool] = []
    for i in range(20):
        try:
            await bot.send_message(PATIENT, str(i))
            outcomes.append(True)
        except NetworkError:
            outcomes.append(False)
    assert 0 < outcomes.count(True) < 20
    assert len(api.messages(PATIENT)) == outcomes.count(True)
    assert api.stats["5xx"] == outcomes.count(False)

    # The same seed replays the same sequence.
    replay = LocalBotApi(seed=1)
    replay.faults.error_5xx_fraction = 0.5
    draws = [replay.engine.check(replay.faults, "sendMessage", PATIENT) is None for _ in range(20)]
    assert draws == outcomes


async def test_slow_answers_and_apply_to(api: LocalBotApi, bot: Bot) -> None:
    api.faults.slow_seconds = 0.3
    await bot.send_message(PATIENT, "slow")
    assert api.stats["slow"] == 1

    api.faults.apply_to = {"sendDocument"}
    api.faults.error_5xx_fraction = 1.0
    await bot.send_message(PATIENT, "not faulted")
    with pytest.raises(NetworkError):
        await bot.send_document(PATIENT, document=b"x", filename="x.txt")


def test_sent_message_helpers() -> None:
    message = SentMessage(
        message_id=1,
        chat_id=1,
        text="t",
        parse_mode=None,
        date=0,
        buttons=[[("Mild 轻", "s:1"), ("Severe 重", "s:3")], [("Help", None)]],
    )
    assert message.button_data("重") == "s:3"
    assert message.flat_buttons[-1] == ("Help", None)
    with pytest.raises(AssertionError, match="no button containing 'Nope'"):
        message.button_data("Nope")
