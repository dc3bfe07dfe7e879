"""One private chat as the page draws it: the bot's and the person's messages, in order.

Read from the local Bot API's own record of the chat (what Telegram would show on the phone),
not from the bot's database: the page shows what was delivered, edits and all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.localapi import LocalBotApi, SentMessage
from bot.localapi.state import ApiError, render_text

JsonDict = dict[str, Any]


def _stamp(epoch: int | None, tz: ZoneInfo) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _keyboard(message: SentMessage) -> list[list[JsonDict]]:
    """Inline keyboard rows: callback buttons carry `data`, link buttons `url`."""
    markup = message.reply_markup or {}
    rows = []
    for row in markup.get("inline_keyboard", []):
        out = []
        for button in row:
            entry: JsonDict = {"text": button.get("text", "")}
            if "callback_data" in button:
                entry["data"] = button["callback_data"]
            elif "url" in button:
                entry["url"] = button["url"]
            out.append(entry)
        rows.append(out)
    return rows


def _bot_message(message: SentMessage, tz: ZoneInfo) -> JsonDict:
    try:
        text, entities = render_text(message.text or "", message.parse_mode)
    except ApiError:  # never stored: the local API refuses such a message
        text, entities = message.text or "", []
    out: JsonDict = {
        "id": message.message_id,
        "from": "bot",
        "text": text,
        "entities": entities,
        "buttons": _keyboard(message),
        "at": _stamp(message.date, tz),
        "edited": message.edits > 0,
    }
    if message.document is not None and message.file_id:
        out["document"] = {"name": message.document[0], "url": f"/api/file/{message.file_id}"}
    if message.photo is not None and message.file_id:
        out["photo"] = f"/api/file/{message.file_id}"
    return out


def chat_messages(api: LocalBotApi, chat_id: int, tz_name: str) -> list[JsonDict]:
    """Every message in the private chat, bot and person interleaved by message id."""
    tz = ZoneInfo(tz_name)
    out = [_bot_message(m, tz) for m in api.messages(chat_id) if not m.deleted]
    for (cid, message_id), message in api.state.user_messages.items():
        if cid == chat_id:
            out.append(
                {
                    "id": message_id,
                    "from": "user",
                    "text": message.get("text") or "",
                    "entities": [],
                    "buttons": [],
                    "at": _stamp(message.get("date"), tz),
                    "edited": "edit_date" in message,
                }
            )
    out.sort(key=lambda m: m["id"])
    return out


def toasts(api: LocalBotApi, owners: dict[str, int], user_id: int) -> list[JsonDict]:
    """Button answers ("Saved", refusals) shown to this person, oldest first."""
    return [
        {"id": a["callback_query_id"], "text": a["text"], "alert": bool(a["show_alert"])}
        for a in api.callback_answers()
        if a.get("text") and owners.get(a["callback_query_id"]) == user_id
    ]
