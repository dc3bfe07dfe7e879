"""A Bot-API-compatible HTTP server on loopback, for tests, the sandbox and benchmarks.

The bot under test runs its *real* python-telegram-bot stack (``Application``, ``HTTPXRequest``)
against this server via ``ApplicationBuilder().base_url(...).base_file_url(...)``, so what is
tested is what runs in production — including PTB's JSON parsing, its error mapping and its
retry behaviour. Tests play patients with :meth:`LocalBotApi.send_text` / :meth:`press` and
observe the bot through :meth:`LocalBotApi.messages` and the ``wait_*`` helpers, which wake on
every bot action instead of sleeping.

The chat model lives in :mod:`bot.localapi.state`, faults and flood limits in
:mod:`bot.localapi.faults`; this module is the HTTP and method-dispatch layer.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from bot.localapi.faults import FaultEngine, FaultKind, Faults
from bot.localapi.state import (
    ApiError,
    BotApiState,
    JsonDict,
    SentMessage,
    StoredFile,
    bad_request,
)

__all__ = ["LocalBotApi"]

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Parameters whose value is a JSON-serialised object when sent as form data (PTB sends every
#: non-string parameter as ``json.dumps(value)`` in a form field).
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "reply_parameters",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "menu_button",
        "link_preview_options",
        "media",
    }
)
#: Methods that put something visible into a chat; they count as "sent" and for flood limits.
_MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "sendDocument",
        "sendPhoto",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
    }
)
#: Telegram accepts files up to 50 MB through the Bot API.
_MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class _Upload:
    """A file that arrived in a multipart request."""

    __slots__ = ("content", "content_type", "filename")

    def __init__(self, filename: str, content: bytes, content_type: str | None) -> None:
        self.filename = filename
        self.content = content
        self.content_type = content_type


Params = dict[str, Any]
MethodHandler = Callable[[Params], Awaitable[Any]]


# --------------------------------------------------------------------------- parameter helpers


def _int(params: Params, name: str, *, required: bool = True) -> int | None:
    """Read an integer parameter that may arrive as int (JSON) or str (form data)."""
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise bad_request(f"{name} is empty" if name != "chat_id" else "chat_id is empty")
        return None
    if isinstance(value, bool):
        raise bad_request(f"invalid {name} specified")
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        if name == "chat_id":
            raise bad_request("chat not found") from None
        raise bad_request(f"invalid {name} specified") from None


def _chat_id(params: Params) -> int:
    chat_id = _int(params, "chat_id")
    assert chat_id is not None  # required=True guarantees it
    return chat_id


def _str(params: Params, name: str) -> str | None:
    value = params.get(name)
    return None if value is None else str(value)


def _bool(params: Params, name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1"}
    return bool(value)


def _obj(params: Params, name: str) -> Any:
    """A JSON object parameter (already decoded by :func:`_normalise`)."""
    return params.get(name)


def _reply_to(params: Params) -> int | None:
    reply_parameters = _obj(params, "reply_parameters")
    if isinstance(reply_parameters, dict) and reply_parameters.get("message_id") is not None:
        return int(reply_parameters["message_id"])
    return _int(params, "reply_to_message_id", required=False)


def _normalise(raw: Params) -> Params:
    """Decode the JSON-in-a-form-field values so handlers see one shape for every encoding."""
    params: Params = {}
    for key, value in raw.items():
        if key in _JSON_PARAMS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {key} JSON object") from None
        params[key] = value
    return params


async def _read_params(request: web.Request) -> Params:
    """Parameters from the query string plus a JSON, urlencoded or multipart body.

    PTB 22's HTTPXRequest sends form-urlencoded bodies (multipart when uploading), with every
    non-string value JSON-encoded; other clients (the sandbox, curl) send JSON.
    """
    raw: Params = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON body") from None
            if not isinstance(body, dict):
                raise bad_request("JSON body must be an object")
            raw.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    raw[key] = _Upload(value.filename, value.file.read(), value.content_type)
                else:
                    raw[key] = value
    return _normalise(raw)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str, parameters: JsonDict | None = None) -> web.Response:
    payload: JsonDict = {"ok": False, "error_code": code, "description": description}
    if parameters:
        payload["parameters"] = parameters
    return web.json_response(payload, status=code)


# --------------------------------------------------------------------------- the server


class LocalBotApi:
    """A fake Telegram Bot API served over real HTTP on 127.0.0.1.

    One instance is one bot with its chats; start it, point PTB at :attr:`base_url`, play
    users, observe messages, flip :attr:`faults`.
    """

    def __init__(
        self, *, bot_id: int = 7000000001, bot_username: str = "nct_diary_bot", seed: int = 0
    ) -> None:
        self.bot_user: JsonDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "NCT Diary (local)",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.state = BotApiState(self.bot_user)
        self.faults = Faults()
        self.engine = FaultEngine(seed)
        self.stats: collections.Counter[str] = collections.Counter()
        self.base_url = ""
        self.base_file_url = ""
        self._runner: web.AppRunner | None = None
        self._closing = False
        # A fresh Event per "something happened": waiters grab the current one, and
        # _notify() sets it and swaps in a new one. Unlike Condition.notify_all this works
        # from the synchronous user-side methods too (no lock to acquire).
        self._changed = asyncio.Event()
        self._methods: dict[str, tuple[str, MethodHandler]] = {}
        for name, handler in self._method_table().items():
            self._methods[name.lower()] = (name, handler)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0 picks a free one) and fill in the base URLs."""
        if self._runner is not None:
            raise RuntimeError("LocalBotApi already started")
        self._closing = False
        self._changed = asyncio.Event()
        app = web.Application(client_max_size=_MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}/bot"
        self.base_file_url = f"http://{bound_host}:{bound_port}/file/bot"

    async def stop(self) -> None:
        """Answer pending long polls at once and shut the server down."""
        self._closing = True
        self._notify()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ------------------------------------------------------------------ waking waiters

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_for(
        self, check: Callable[[], _T | None], seconds: float, describe: Callable[[], str]
    ) -> _T:
        """Re-run ``check`` on every change until it returns non-None or time runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            result = check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(describe())
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ playing users

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str | None = "zh-hans",
        first_name: str = "Test",
    ) -> dict:
        """A user writes ``text``; returns the Message dict the bot will receive."""
        message = self.state.user_text(
            user_id,
            text,
            chat_id=chat_id,
            chat_type=chat_type,
            language_code=language_code,
            first_name=first_name,
        )
        self._notify()
        return message

    def press(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        language_code: str | None = "zh-hans",
    ) -> str:
        """A user taps a button of bot message ``message_id``; returns the callback query id."""
        query_id = self.state.user_press(
            user_id, message_id, data, chat_id=chat_id, language_code=language_code
        )
        self._notify()
        return query_id

    def edit_text(
        self, user_id: int, message_id: int, new_text: str, *, chat_id: int | None = None
    ) -> None:
        """A user edits a message they sent earlier (``edited_message`` update)."""
        self.state.user_edit(user_id, message_id, new_text, chat_id=chat_id)
        self._notify()

    def add_raw_update(self, update: dict) -> int:
        """Queue any update dict verbatim (its ``update_id`` is assigned here)."""
        update_id = self.state.enqueue(update)
        self._notify()
        return update_id

    def add_unparsable_update(self, user_id: int) -> int:
        """An update python-telegram-bot cannot parse (a message whose date is not a number),
        as a newer Bot API or a broken proxy might send."""
        chat = {"id": user_id, "type": "private", "first_name": "Patient"}
        sender = {"id": user_id, "is_bot": False, "first_name": "Patient"}
        return self.add_raw_update(
            {
                "message": {
                    "message_id": 1,
                    "date": "not a date",
                    "chat": chat,
                    "from": sender,
                    "text": "bleeding badly",
                }
            }
        )

    def block(self, chat_id: int) -> None:
        """The user blocks the bot: sends to ``chat_id`` answer 403 from now on."""
        self.faults.forbidden_chats.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        """The user unblocks the bot."""
        self.faults.forbidden_chats.discard(chat_id)

    # ------------------------------------------------------------------ observing the bot
    # The wait_* helpers take ``timeout=`` (agreed interface; ASYNC109 silenced on purpose):
    # the timeout is part of what the assertion says, and callers rarely want asyncio.timeout.

    def messages(self, chat_id: int) -> list[SentMessage]:
        """The bot's messages in ``chat_id`` in send order, current state (deleted flagged)."""
        return list(self.state.sent_by_chat.get(chat_id, ()))

    def all_messages(self) -> list[SentMessage]:
        """Every bot message in every chat, in send order."""
        return list(self.state.sent_order)

    def callback_answers(self) -> list[dict]:
        """Parameters of every accepted answerCallbackQuery, in order."""
        return [dict(answer) for answer in self.state.callback_answers]

    @property
    def pending_updates(self) -> int:
        """Updates queued but not yet acknowledged by the bot's getUpdates offset."""
        return len(self.state.updates)

    def _describe_chat(self, chat_id: int) -> str:
        lines = [
            f"  #{i} id={m.message_id} edits={m.edits} deleted={m.deleted} text={m.text!r} "
            f"buttons={m.flat_buttons}"
            for i, m in enumerate(self.messages(chat_id))
        ]
        return "\n".join(lines) or "  (no bot messages)"

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[SentMessage], bool] | None = None,
        *,
        after: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentMessage:
        """The first bot message in ``chat_id`` at index >= ``after`` matching ``predicate``.

        ``after`` defaults to the number of messages now, i.e. "the next message the bot sends";
        pass 0 to also accept messages that already arrived.
        """
        start = len(self.messages(chat_id)) if after is None else after

        def check() -> SentMessage | None:
            for message in self.messages(chat_id)[start:]:
                if predicate is None or predicate(message):
                    return message
            return None

        return await self._wait_for(
            check,
            timeout,
            lambda: (
                f"no matching bot message in chat {chat_id} (index >= {start}) within "
                f"{timeout}s; the chat holds:\n{self._describe_chat(chat_id)}"
            ),
        )

    async def wait_for_edit(
        self,
        chat_id: int,
        message_id: int,
        predicate: Callable[[SentMessage], bool],
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentMessage:
        """Wait until bot message ``message_id`` (current state) satisfies ``predicate``."""

        def check() -> SentMessage | None:
            message = self.state.bot_messages.get((chat_id, message_id))
            return message if message is not None and predicate(message) else None

        return await self._wait_for(
            check,
            timeout,
            lambda: (
                f"message {message_id} in chat {chat_id} did not reach the expected state "
                f"within {timeout}s; the chat holds:\n{self._describe_chat(chat_id)}"
            ),
        )

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` holds; re-checked on every bot call and user action."""
        await self._wait_for(
            lambda: True if predicate() else None,
            timeout,
            lambda: f"condition not met within {timeout}s",
        )

    async def wait_updates_consumed(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the bot has acknowledged (via ``offset``) every queued update."""
        await self._wait_for(
            lambda: True if not self.state.updates else None,
            timeout,
            lambda: (
                f"{self.pending_updates} update(s) still unacknowledged after {timeout}s: "
                f"{[u['update_id'] for u in self.state.updates]}"
            ),
        )

    # ------------------------------------------------------------------ HTTP layer

    async def _handle_method(self, request: web.Request) -> web.StreamResponse:
        """Dispatch one Bot API call, injecting faults for the methods they apply to.

        Waiters are woken after the books (stats, flood accounting) are updated, so a
        ``wait_until`` on :attr:`stats` sees the call that woke it.
        """
        try:
            return await self._dispatch(request)
        finally:
            self._notify()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        entry = self._methods.get(request.match_info["method"].lower())
        method = entry[0] if entry else request.match_info["method"]
        self.stats[f"call:{method}"] += 1
        if self.faults.reject_token:
            self.stats["401"] += 1
            return _error(401, "Unauthorized")
        if self.faults.fail_next.get(method, 0) > 0:
            self.faults.fail_next[method] -= 1
            self.stats["5xx"] += 1
            return _error(502, "Bad Gateway")
        if entry is None:
            return _error(404, "Not Found")
        try:
            params = await _read_params(request)
            chat_id = _int(params, "chat_id", required=False) if "chat_id" in params else None
            response = await self._apply_faults(request, method, chat_id)
            if response is not None:
                return response
            result = await entry[1](params)
        except ApiError as err:
            return _error(err.code, err.description)
        if method in _MESSAGE_METHODS:
            self.stats["sent"] += 1
            if chat_id is not None and method in self.faults.apply_to:
                self.engine.record_accepted(chat_id)
        return _ok(result)

    async def _apply_faults(
        self, request: web.Request, method: str, chat_id: int | None
    ) -> web.StreamResponse | None:
        """Delay and/or answer with a fault instead of executing ``method``."""
        faults = self.faults
        if method not in faults.apply_to:
            return None
        if faults.slow_seconds > 0:
            self.stats["slow"] += 1
            await asyncio.sleep(faults.slow_seconds)
        kind = self.engine.check(faults, method, chat_id)
        if kind is None:
            return None
        self.stats[kind.value] += 1
        if kind is FaultKind.DROP:
            # Abort the TCP connection without a byte of response: the client sees a network
            # error and cannot know whether the call took effect (here: it did not).
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if kind is FaultKind.BAD_GATEWAY:
            return _error(502, "Bad Gateway")
        if kind is FaultKind.FORBIDDEN:
            return _error(403, "Forbidden: bot was blocked by the user")
        retry_after = faults.retry_after_seconds
        return _error(
            429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
        )

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        """Serve an uploaded file under ``base_file_url`` (what ``File.download_*`` fetches)."""
        path = request.match_info["path"]
        for stored in self.state.files.values():
            if stored.file_path == path:
                return web.Response(
                    body=stored.content, content_type=stored.mime_type or "application/octet-stream"
                )
        return _error(404, "Not Found")

    # ------------------------------------------------------------------ Bot API methods

    def _method_table(self) -> dict[str, MethodHandler]:
        return {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._true,
            "setWebhook": self._true,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "sendChatAction": self._send_chat_action,
            "getChat": self._get_chat,
            "getFile": self._get_file,
            "close": self._true,
            "logOut": self._true,
        }

    async def _true(self, params: Params) -> bool:
        return True

    async def _get_me(self, params: Params) -> JsonDict:
        return self.bot_user

    async def _get_updates(self, params: Params) -> list[JsonDict]:
        """Acknowledge below ``offset``, then long-poll up to ``timeout`` s for new updates."""
        offset = _int(params, "offset", required=False)
        limit = min(max(_int(params, "limit", required=False) or 100, 1), 100)
        timeout = float(params.get("timeout") or 0)
        self.state.acknowledge(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            updates = self.state.pending(offset, limit)
            remaining = deadline - loop.time()
            if updates or self._closing or remaining <= 0:
                return updates
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass

    async def _get_webhook_info(self, params: Params) -> JsonDict:
        return {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.state.updates),
        }

    @staticmethod
    def _commands_key(params: Params) -> str:
        scope = _obj(params, "scope") or {"type": "default"}
        return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)

    async def _set_my_commands(self, params: Params) -> bool:
        commands = _obj(params, "commands")
        if not isinstance(commands, list):
            raise bad_request("commands must be an array")
        for command in commands:
            if (
                not isinstance(command, dict)
                or not command.get("command")
                or not command.get("description")
            ):
                raise bad_request("command and description must be non-empty")
        self.state.commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: Params) -> list[JsonDict]:
        return list(self.state.commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: Params) -> bool:
        self.state.commands.pop(self._commands_key(params), None)
        return True

    async def _set_chat_menu_button(self, params: Params) -> bool:
        chat_id = _int(params, "chat_id", required=False)
        self.state.menu_buttons[chat_id] = _obj(params, "menu_button") or {"type": "default"}
        return True

    async def _get_chat_menu_button(self, params: Params) -> JsonDict:
        chat_id = _int(params, "chat_id", required=False)
        return self.state.menu_buttons.get(
            chat_id, self.state.menu_buttons.get(None, {"type": "default"})
        )

    async def _send_message(self, params: Params) -> JsonDict:
        sent = self.state.send(
            _chat_id(params),
            _str(params, "text"),
            parse_mode=_str(params, "parse_mode"),
            reply_markup=_obj(params, "reply_markup"),
            reply_to_message_id=_reply_to(params),
        )
        return self.state.message_dict(sent)

    async def _edit_message_text(self, params: Params) -> JsonDict:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the local API")
        message_id = _int(params, "message_id")
        assert message_id is not None
        sent = self.state.edit_text(
            _chat_id(params),
            message_id,
            _str(params, "text"),
            parse_mode=_str(params, "parse_mode"),
            reply_markup=_obj(params, "reply_markup"),
        )
        return self.state.message_dict(sent)

    async def _edit_message_caption(self, params: Params) -> JsonDict:
        message_id = _int(params, "message_id")
        assert message_id is not None
        sent = self.state.edit_text(
            _chat_id(params),
            message_id,
            _str(params, "caption"),
            parse_mode=_str(params, "parse_mode"),
            reply_markup=_obj(params, "reply_markup"),
            caption=True,
        )
        return self.state.message_dict(sent)

    async def _edit_message_reply_markup(self, params: Params) -> JsonDict:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the local API")
        message_id = _int(params, "message_id")
        assert message_id is not None
        sent = self.state.edit_markup(_chat_id(params), message_id, _obj(params, "reply_markup"))
        return self.state.message_dict(sent)

    async def _delete_message(self, params: Params) -> bool:
        message_id = _int(params, "message_id")
        assert message_id is not None
        self.state.delete(_chat_id(params), message_id)
        return True

    async def _answer_callback_query(self, params: Params) -> bool:
        query_id = _str(params, "callback_query_id")
        if not query_id:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self.state.answer_callback(query_id, _str(params, "text"), _bool(params, "show_alert"))
        return True

    def _upload(self, params: Params, field: str) -> StoredFile:
        """The file behind a ``document``/``photo`` parameter: an upload or a known file_id."""
        value = params.get(field)
        if isinstance(value, _Upload):
            return self.state.store_file(value.filename or field, value.content, value.content_type)
        if isinstance(value, str) and value in self.state.files:
            return self.state.files[value]
        if isinstance(value, str) and value:
            raise bad_request("wrong file identifier/HTTP URL specified")
        raise bad_request(f"there is no {field} in the request")

    async def _send_document(self, params: Params) -> JsonDict:
        chat_id = _chat_id(params)
        stored = self._upload(params, "document")
        sent = self.state.send(
            chat_id,
            _str(params, "caption"),
            parse_mode=_str(params, "parse_mode"),
            reply_markup=_obj(params, "reply_markup"),
            reply_to_message_id=_reply_to(params),
            document=stored,
        )
        return self.state.message_dict(sent)

    async def _send_photo(self, params: Params) -> JsonDict:
        chat_id = _chat_id(params)
        stored = self._upload(params, "photo")
        sent = self.state.send(
            chat_id,
            _str(params, "caption"),
            parse_mode=_str(params, "parse_mode"),
            reply_markup=_obj(params, "reply_markup"),
            reply_to_message_id=_reply_to(params),
            photo=stored,
        )
        return self.state.message_dict(sent)

    async def _send_chat_action(self, params: Params) -> bool:
        _chat_id(params)
        if not params.get("action"):
            raise bad_request("action is empty")
        return True

    async def _get_chat(self, params: Params) -> JsonDict:
        chat = dict(self.state.chat(_chat_id(params)))
        chat.update(
            {
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                    "gifts_from_channels": False,
                },
            }
        )
        return chat

    async def _get_file(self, params: Params) -> JsonDict:
        file_id = _str(params, "file_id") or ""
        stored = self.state.files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }
