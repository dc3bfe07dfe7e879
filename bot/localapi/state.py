"""The in-memory model behind the local Bot API: chats, messages, files and the update queue.

Kept free of HTTP and asyncio on purpose so that the rules that make the fake *faithful*
(which edits Telegram refuses, how ``offset`` acknowledges updates, what a Message object looks
like to python-telegram-bot) can be read and changed in one place, and so that the browser
sandbox can reuse the same model without a network round trip.

Every rule Telegram enforces with a ``400 Bad Request`` is raised here as :class:`ApiError`;
the HTTP layer only turns it into JSON.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

JsonDict = dict[str, Any]

#: Telegram's limit for the text of one message (after entity parsing).
MAX_TEXT_LENGTH = 4096
#: Telegram's limit for a caption.
MAX_CAPTION_LENGTH = 1024
#: Telegram's limit for ``callback_data`` in bytes.
MAX_CALLBACK_DATA_BYTES = 64


class ApiError(Exception):
    """A refusal that Telegram would answer with ``{"ok": false, ...}``.

    Carrying the HTTP status and the exact description lets python-telegram-bot map it to the
    same exception class (``BadRequest``, ``Forbidden``, ...) it would raise in production.
    """

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def bad_request(detail: str) -> ApiError:
    """Build the ubiquitous ``400 Bad Request: ...`` error."""
    return ApiError(400, f"Bad Request: {detail}")


@dataclass
class SentMessage:
    """One message the bot sent, as the tests observe it (its *current* state).

    ``text`` is what the bot passed (raw, including any HTML markup), so tests can compare it
    with the strings the bot builds; the Message object handed back to the bot is rendered the
    way Telegram would render it (markup parsed into entities).
    """

    message_id: int
    chat_id: int
    text: str | None
    buttons: list[list[tuple[str, str | None]]]
    parse_mode: str | None
    date: int
    edits: int = 0
    deleted: bool = False
    document: tuple[str, bytes] | None = None
    photo: bytes | None = None
    history: list[str | None] = field(default_factory=list)
    reply_markup: JsonDict | None = None
    reply_to_message_id: int | None = None
    edit_date: int | None = None
    file_id: str | None = None

    def button_data(self, label_substring: str) -> str:
        """Return the callback_data (or url) of the first button whose label contains the text.

        Tests press buttons by what a patient reads, not by the encoded callback data, so a
        change in the encoding does not break every test.
        """
        for label, data in self.flat_buttons:
            if label_substring in label and data is not None:
                return data
        labels = [label for label, _ in self.flat_buttons]
        raise AssertionError(
            f"no button containing {label_substring!r} in message {self.message_id} "
            f"({self.text!r}); buttons: {labels}"
        )

    @property
    def flat_buttons(self) -> list[tuple[str, str | None]]:
        """All inline buttons, row by row, as one list."""
        return [button for row in self.buttons for button in row]


@dataclass
class StoredFile:
    """A file the bot uploaded; kept so ``getFile`` and the file URL can hand it back."""

    file_id: str
    file_unique_id: str
    file_name: str
    content: bytes
    mime_type: str | None

    @property
    def file_path(self) -> str:
        """The relative path served under ``base_file_url``; unique per upload."""
        return f"files/{self.file_id}/{self.file_name}"


# --------------------------------------------------------------------------- HTML parse_mode

_HTML_ENTITY_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


def _utf16_len(text: str) -> int:
    """Telegram measures entity offsets in UTF-16 code units, not code points."""
    return len(text.encode("utf-16-le")) // 2


class _TelegramHtml(HTMLParser):
    """Parses ``parse_mode=HTML`` text the way Telegram does, refusing what Telegram refuses.

    The point is to catch real bugs in the bot (an unescaped ``<`` from patient input, a
    ``<br>`` tag) in tests rather than in production, and to give the bot back plain text plus
    entities exactly like the real API.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.stack: list[tuple[str, int, JsonDict]] = []
        self.entities: list[JsonDict] = []
        self.error: str | None = None

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        kind = _HTML_ENTITY_TAGS.get(tag)
        if kind is None or (tag == "span" and attributes.get("class") != "tg-spoiler"):
            self._fail(f'Unsupported start tag "{tag}"')
            return
        extra: JsonDict = {}
        if tag == "a":
            href = attributes.get("href")
            if not href:
                self._fail('Can\'t find "href" attribute in "a" tag')
                return
            if href.startswith("tg://user?id="):
                kind = "text_mention"
                extra["user"] = {
                    "id": int(href.split("=", 1)[1]),
                    "is_bot": False,
                    "first_name": "User",
                }
            else:
                extra["url"] = href
        elif tag == "tg-emoji":
            extra["custom_emoji_id"] = attributes.get("emoji-id") or ""
        elif tag == "blockquote" and "expandable" in attributes:
            kind = "expandable_blockquote"
        elif tag == "code" and self.stack and self.stack[-1][0] == "pre":
            language = (attributes.get("class") or "").removeprefix("language-")
            if language:
                self.stack[-1][2]["language"] = language
        self.stack.append((tag, self.length, {"type": kind, **extra}))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack:
            self._fail(f'Unexpected end tag "{tag}"')
            return
        open_tag, start, entity = self.stack.pop()
        if open_tag != tag:
            self._fail(f'Unmatched end tag "{tag}", expected "</{open_tag}>"')
            return
        if tag == "code" and self.stack and self.stack[-1][0] == "pre":
            return  # <pre><code class="language-x"> is one `pre` entity with a language
        if self.length > start:
            self.entities.append({**entity, "offset": start, "length": self.length - start})

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._fail(f'Unsupported start tag "{tag}"')

    def handle_data(self, data: str) -> None:
        if "<" in data:
            self._fail("Unexpected character '<'; escape it as &lt;")
        self.parts.append(data)
        self.length += _utf16_len(data)

    def handle_comment(self, data: str) -> None:
        self._fail("Unsupported HTML comment")

    def handle_decl(self, decl: str) -> None:
        self._fail("Unsupported HTML declaration")


def render_text(text: str, parse_mode: str | None) -> tuple[str, list[JsonDict]]:
    """Turn the text the bot sent into (plain text, entities) as Telegram would store it.

    Only HTML is parsed (the project's formatting mode); Markdown modes are passed through
    unchanged without entities. Raises the ``can't parse entities`` error Telegram gives.
    """
    if (parse_mode or "").upper() != "HTML":
        return text, []
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.error is None and parser.stack:
        parser.error = f'Can\'t find end tag corresponding to start tag "{parser.stack[-1][0]}"'
    if parser.error is not None:
        raise bad_request(f"can't parse entities: {parser.error}")
    entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
    return "".join(parser.parts), entities


# --------------------------------------------------------------------------- keyboards


def parse_inline_keyboard(
    reply_markup: JsonDict | None,
) -> tuple[JsonDict | None, list[list[tuple[str, str | None]]]]:
    """Validate a ``reply_markup`` and split out the inline keyboard.

    Returns the markup Telegram would echo back in the Message (only inline keyboards are
    echoed; reply keyboards and ``remove_keyboard`` are accepted but not part of the message)
    and the ``(label, callback_data or url)`` rows the tests press.
    """
    if not reply_markup or "inline_keyboard" not in reply_markup:
        return None, []
    rows = reply_markup["inline_keyboard"]
    if not isinstance(rows, list):
        raise bad_request('can\'t parse inline keyboard: field "inline_keyboard" must be Array')
    buttons: list[list[tuple[str, str | None]]] = []
    for row in rows:
        parsed_row: list[tuple[str, str | None]] = []
        for button in row:
            label = button.get("text")
            if not label:
                raise bad_request("can't parse inline keyboard button: Text must be non-empty")
            data = button.get("callback_data")
            if data is not None and not (0 < len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES):
                raise bad_request("BUTTON_DATA_INVALID")
            target = data if data is not None else button.get("url")
            if target is None and isinstance(button.get("web_app"), dict):
                target = button["web_app"].get("url")
            if target is None and not any(
                key in button
                for key in (
                    "login_url",
                    "switch_inline_query",
                    "switch_inline_query_current_chat",
                    "switch_inline_query_chosen_chat",
                    "callback_game",
                    "pay",
                    "copy_text",
                )
            ):
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            parsed_row.append((str(label), None if target is None else str(target)))
        buttons.append(parsed_row)
    if not any(buttons):
        return None, []
    return {"inline_keyboard": rows}, buttons


# --------------------------------------------------------------------------- the model


class BotApiState:
    """Chats, messages, files, callback queries and the update queue of one fake bot.

    Ids are sequential and the clock is injectable so runs are reproducible.
    """

    def __init__(self, bot_user: JsonDict, clock: Callable[[], float] = time.time) -> None:
        self.bot_user = bot_user
        self._clock = clock
        self._next_message_id = 1
        self._next_update_id = 1
        self._next_callback_id = 1
        self._next_file_id = 1
        self.updates: deque[JsonDict] = deque()
        self.chats: dict[int, JsonDict] = {}
        self.users: dict[int, JsonDict] = {}
        self.bot_messages: dict[tuple[int, int], SentMessage] = {}
        self.sent_order: list[SentMessage] = []
        self.sent_by_chat: dict[int, list[SentMessage]] = {}
        self.user_messages: dict[tuple[int, int], JsonDict] = {}
        self.callback_queries: dict[str, bool] = {}  # id -> answered
        self.callback_answers: list[JsonDict] = []
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[str, list[JsonDict]] = {}
        self.menu_buttons: dict[int | None, JsonDict] = {}

    # ----------------------------------------------------------------- helpers

    def now(self) -> int:
        """Telegram dates are whole epoch seconds."""
        return int(self._clock())

    def _new_message_id(self) -> int:
        message_id = self._next_message_id
        self._next_message_id += 1
        return message_id

    def chat(
        self, chat_id: int, chat_type: str | None = None, first_name: str = "Test"
    ) -> JsonDict:
        """The Chat object for ``chat_id``, created on first use.

        The bot may write to a patient that never wrote in this run (a seeded database, a
        reminder), so unknown chats are synthesised instead of answering ``chat not found``.
        Negative ids are groups, as in Telegram.
        """
        existing = self.chats.get(chat_id)
        if existing is not None and (chat_type is None or existing["type"] == chat_type):
            return existing
        kind = chat_type or ("private" if chat_id > 0 else "group")
        chat: JsonDict = {"id": chat_id, "type": kind}
        if kind == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = f"Group {chat_id}"
        self.chats[chat_id] = chat
        return chat

    def user(
        self, user_id: int, first_name: str | None = None, language_code: str | None = None
    ) -> JsonDict:
        """The User object of a (fake) patient; remembers the name across actions."""
        user = dict(
            self.users.get(user_id)
            or {"id": user_id, "is_bot": False, "first_name": first_name or "Test"}
        )
        if first_name is not None:
            user["first_name"] = first_name
        if language_code is not None:
            user["language_code"] = language_code
        else:
            user.pop("language_code", None)
        self.users[user_id] = user
        return user

    def enqueue(self, payload: JsonDict) -> int:
        """Append an update (assigning its ``update_id``) and return the id."""
        update_id = self._next_update_id
        self._next_update_id += 1
        self.updates.append({**payload, "update_id": update_id})
        return update_id

    # ----------------------------------------------------------------- the user side

    def user_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None,
        chat_type: str,
        language_code: str | None,
        first_name: str,
    ) -> JsonDict:
        """A patient/coordinator writes ``text``; enqueues a ``message`` update."""
        cid = user_id if chat_id is None else chat_id
        chat = self.chat(cid, chat_type, first_name)
        if chat["type"] == "private":
            chat["first_name"] = first_name
        message: JsonDict = {
            "message_id": self._new_message_id(),
            "date": self.now(),
            "chat": dict(chat),
            "from": self.user(user_id, first_name, language_code),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0] if text.strip() else text
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        self.user_messages[(cid, message["message_id"])] = message
        self.enqueue({"message": message})
        return message

    def user_edit(
        self, user_id: int, message_id: int, new_text: str, *, chat_id: int | None
    ) -> JsonDict:
        """The user edits a message they sent; enqueues an ``edited_message`` update."""
        cid = user_id if chat_id is None else chat_id
        original = self.user_messages.get((cid, message_id))
        if original is None or original["from"]["id"] != user_id:
            raise KeyError(f"user {user_id} sent no message {message_id} in chat {cid}")
        edited = {**original, "text": new_text, "edit_date": self.now()}
        edited.pop("entities", None)
        if new_text.startswith("/"):
            command = new_text.split(maxsplit=1)[0]
            edited["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        self.user_messages[(cid, message_id)] = edited
        self.enqueue({"edited_message": edited})
        return edited

    def user_press(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None,
        language_code: str | None,
    ) -> str:
        """The user taps an inline button; enqueues a ``callback_query`` update.

        ``data`` is not checked against the keyboard: Telegram clients can send any data, and
        the bot must defend itself against forged or stale callbacks.  An unknown or deleted
        message is delivered as an InaccessibleMessage (``date`` 0), as Telegram does.
        """
        cid = user_id if chat_id is None else chat_id
        query_id = f"{user_id}-{self._next_callback_id}"
        self._next_callback_id += 1
        sent = self.bot_messages.get((cid, message_id))
        if sent is None or sent.deleted:
            message: JsonDict = {"chat": dict(self.chat(cid)), "message_id": message_id, "date": 0}
        else:
            message = self.message_dict(sent)
        chat_instance = hashlib.sha1(str(cid).encode()).hexdigest()[:16]
        self.callback_queries[query_id] = False
        self.enqueue(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self.user(user_id, None, language_code),
                    "chat_instance": str(int(chat_instance, 16)),
                    "data": data,
                    "message": message,
                }
            }
        )
        return query_id

    # ----------------------------------------------------------------- getUpdates

    def acknowledge(self, offset: int | None) -> None:
        """Forget every update below ``offset`` — Telegram's only form of acknowledgement.

        A negative offset keeps only the last ``-offset`` updates, as documented by Telegram.
        """
        if offset is None or offset == 0:
            return
        if offset < 0:
            while len(self.updates) > -offset:
                self.updates.popleft()
            return
        while self.updates and self.updates[0]["update_id"] < offset:
            self.updates.popleft()

    def pending(self, offset: int | None, limit: int) -> list[JsonDict]:
        """Updates a getUpdates call would return now (unacknowledged ones are re-sent)."""
        start = offset if offset and offset > 0 else 0
        return [u for u in self.updates if u["update_id"] >= start][:limit]

    # ----------------------------------------------------------------- the bot side

    def message_dict(self, sent: SentMessage, *, nested: bool = False) -> JsonDict:
        """The Message object of a bot message, as Telegram returns it."""
        message: JsonDict = {
            "message_id": sent.message_id,
            "date": sent.date,
            "chat": dict(self.chat(sent.chat_id)),
            "from": self.bot_user,
        }
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        is_media = sent.document is not None or sent.photo is not None
        if sent.text is not None:
            plain, entities = render_text(sent.text, sent.parse_mode)
            message["caption" if is_media else "text"] = plain
            if entities:
                message["caption_entities" if is_media else "entities"] = entities
        if sent.document is not None and sent.file_id is not None:
            stored = self.files[sent.file_id]
            message["document"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": stored.file_name,
                "file_size": len(stored.content),
                **({"mime_type": stored.mime_type} if stored.mime_type else {}),
            }
        if sent.photo is not None and sent.file_id is not None:
            stored = self.files[sent.file_id]
            message["photo"] = [
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": len(stored.content),
                    "width": 320,
                    "height": 320,
                }
            ]
        if sent.reply_markup is not None:
            message["reply_markup"] = sent.reply_markup
        if sent.reply_to_message_id is not None and not nested:
            replied = self.any_message(sent.chat_id, sent.reply_to_message_id)
            if replied is not None:
                message["reply_to_message"] = replied
        return message

    def any_message(self, chat_id: int, message_id: int) -> JsonDict | None:
        """A user or bot message as a (non-nested) Message dict, if it exists."""
        sent = self.bot_messages.get((chat_id, message_id))
        if sent is not None and not sent.deleted:
            return self.message_dict(sent, nested=True)
        return self.user_messages.get((chat_id, message_id))

    def store_file(self, file_name: str, content: bytes, mime_type: str | None) -> StoredFile:
        """Keep an uploaded file and give it Telegram-looking ids."""
        number = self._next_file_id
        self._next_file_id += 1
        stored = StoredFile(
            file_id=f"LOCAL{number:08d}{hashlib.sha1(content).hexdigest()[:12]}",
            file_unique_id=f"U{number:08d}",
            file_name=file_name,
            content=content,
            mime_type=mime_type,
        )
        self.files[stored.file_id] = stored
        return stored

    def send(
        self,
        chat_id: int,
        text: str | None,
        *,
        parse_mode: str | None,
        reply_markup: JsonDict | None,
        reply_to_message_id: int | None = None,
        document: StoredFile | None = None,
        photo: StoredFile | None = None,
    ) -> SentMessage:
        """Record a message the bot sends (sendMessage / sendDocument / sendPhoto)."""
        is_media = document is not None or photo is not None
        if not is_media and not (text or "").strip():
            raise bad_request("message text is empty")
        if text is not None:
            plain, _ = render_text(text, parse_mode)
            limit = MAX_CAPTION_LENGTH if is_media else MAX_TEXT_LENGTH
            if _utf16_len(plain) > limit:
                raise bad_request(
                    "message caption is too long" if is_media else "message is too long"
                )
        markup, buttons = parse_inline_keyboard(reply_markup)
        self.chat(chat_id)
        media = document or photo
        sent = SentMessage(
            message_id=self._new_message_id(),
            chat_id=chat_id,
            text=text,
            buttons=buttons,
            parse_mode=parse_mode,
            date=self.now(),
            document=(document.file_name, document.content) if document else None,
            photo=photo.content if photo else None,
            reply_markup=markup,
            reply_to_message_id=reply_to_message_id,
            file_id=media.file_id if media else None,
        )
        self.bot_messages[(chat_id, sent.message_id)] = sent
        self.sent_order.append(sent)
        self.sent_by_chat.setdefault(chat_id, []).append(sent)
        return sent

    def _editable(self, chat_id: int, message_id: int) -> SentMessage:
        sent = self.bot_messages.get((chat_id, message_id))
        if sent is None or sent.deleted:
            raise bad_request("message to edit not found")
        return sent

    def edit_text(
        self,
        chat_id: int,
        message_id: int,
        text: str | None,
        *,
        parse_mode: str | None,
        reply_markup: JsonDict | None,
        caption: bool = False,
    ) -> SentMessage:
        """editMessageText / editMessageCaption with Telegram's refusals.

        Omitting ``reply_markup`` removes the inline keyboard (as in Telegram), and an edit
        that changes neither the rendered text nor the keyboard is refused with ``message is
        not modified`` — bots must not rely on no-op edits succeeding.
        """
        sent = self._editable(chat_id, message_id)
        is_media = sent.document is not None or sent.photo is not None
        if caption != is_media:
            raise bad_request(
                "there is no caption in the message to edit"
                if caption
                else "there is no text in the message to edit"
            )
        if not caption and not (text or "").strip():
            raise bad_request("message text is empty")
        new_plain, new_entities = render_text(text or "", parse_mode)
        if _utf16_len(new_plain) > (MAX_CAPTION_LENGTH if caption else MAX_TEXT_LENGTH):
            raise bad_request("message is too long")
        markup, buttons = parse_inline_keyboard(reply_markup)
        old_plain, old_entities = render_text(sent.text or "", sent.parse_mode)
        if (new_plain, new_entities, markup) == (old_plain, old_entities, sent.reply_markup):
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        sent.history.append(sent.text)
        sent.text = text
        sent.parse_mode = parse_mode
        sent.reply_markup = markup
        sent.buttons = buttons
        sent.edits += 1
        sent.edit_date = self.now()
        return sent

    def edit_markup(
        self, chat_id: int, message_id: int, reply_markup: JsonDict | None
    ) -> SentMessage:
        """editMessageReplyMarkup; same ``not modified`` rule as text edits."""
        sent = self._editable(chat_id, message_id)
        markup, buttons = parse_inline_keyboard(reply_markup)
        if markup == sent.reply_markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        sent.reply_markup = markup
        sent.buttons = buttons
        sent.edits += 1
        sent.edit_date = self.now()
        return sent

    def delete(self, chat_id: int, message_id: int) -> None:
        """deleteMessage: bot messages are kept but flagged so tests can still inspect them."""
        sent = self.bot_messages.get((chat_id, message_id))
        if sent is not None and not sent.deleted:
            sent.deleted = True
            return
        if self.user_messages.pop((chat_id, message_id), None) is not None:
            return
        raise bad_request("message to delete not found")

    def answer_callback(self, query_id: str, text: str | None, show_alert: bool) -> None:
        """answerCallbackQuery; a query can be answered once, unknown ids are refused."""
        if self.callback_queries.get(query_id, True):
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self.callback_queries[query_id] = True
        self.callback_answers.append(
            {"callback_query_id": query_id, "text": text, "show_alert": show_alert}
        )
