"""The one way the bot says anything: a durable, prioritized outbox in SQLite.

Handlers and the scheduler *enqueue* (inside the transaction that records what happened, so a
prompt is marked sent-to-outbox if and only if it will be delivered); the `Sender` task drains
the outbox in priority order. A crash between Telegram accepting a message and the outbox
recording it is the only way a message can go out twice (see docs/delivery.md).
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

import aiosqlite

from storage import outbox

Buttons = list[list[tuple[str, str]]]  # rows of (label, callback_data); "url:" prefix = URL button


class Priority(IntEnum):
    URGENT = 0  # urgent alerts and their re-sends
    REPLY = 1  # replies to a user's own action
    PROMPT = 2  # scheduled prompts and reminders
    DIGEST = 3  # digests and other bulk


class ReplyGate:
    """Set for the update being handled when its sender is a stranger: at most one message a
    `every` reaches their chat (issue 11 §1). Anything else queued for it is left out."""

    def __init__(self, chat_id: int, last: dict[int, datetime], now: datetime, every: float):
        self.chat_id = chat_id
        self._last = last  # chat → when its last reply was queued (shared, in memory)
        self._now = now
        self._every = every
        self.suppressed = 0

    def allows(self, chat_id: int) -> bool:
        if chat_id != self.chat_id:
            return True
        last = self._last.get(chat_id)
        if last is not None and (self._now - last).total_seconds() < self._every:
            self.suppressed += 1
            return False
        self._last[chat_id] = self._now
        return True


#: The gate of the update being handled (None: no limit). Set before every update.
reply_gate: ContextVar[ReplyGate | None] = ContextVar("reply_gate", default=None)


@dataclass(frozen=True)
class Outgoing:
    id: int
    priority: int
    chat_id: int
    kind: str
    payload: dict[str, Any]
    ref: str | None
    attempts: int


async def enqueue(
    conn: aiosqlite.Connection,
    now: datetime,
    chat_id: int,
    text: str,
    *,
    buttons: Buttons | None = None,
    priority: Priority = Priority.REPLY,
    ref: str | None = None,
    secret: bool = False,
) -> int:
    """Queue a new message. Call inside a transaction; `Sender.wake()` after commit.

    `secret`: the text holds something that must not stay on the server (an enrolment code):
    the sender strips it from the outbox as soon as the message is sent or given up.
    """
    payload: dict[str, Any] = {"text": text, "buttons": buttons}
    if secret:
        payload["secret"] = True
    return await _insert(conn, now, chat_id, "send", payload, priority, ref)


async def enqueue_edit(
    conn: aiosqlite.Connection,
    now: datetime,
    chat_id: int,
    message_id: int,
    text: str,
    *,
    buttons: Buttons | None = None,
    priority: Priority = Priority.REPLY,
    ref: str | None = None,
) -> int:
    """Queue an edit; if the message no longer exists the sender sends it as a new one."""
    payload = {"message_id": message_id, "text": text, "buttons": buttons}
    return await _insert(conn, now, chat_id, "edit", payload, priority, ref)


async def enqueue_edit_ref(
    conn: aiosqlite.Connection,
    now: datetime,
    chat_id: int,
    edit_ref: str,
    text: str,
    *,
    buttons: Buttons | None = None,
    priority: Priority = Priority.REPLY,
) -> int:
    """Queue an edit of the message that was sent for outbox `ref` (resolved at send time)."""
    payload = {"edit_ref": edit_ref, "text": text, "buttons": buttons}
    return await _insert(conn, now, chat_id, "edit", payload, priority, None)


async def enqueue_file(
    conn: aiosqlite.Connection,
    now: datetime,
    chat_id: int,
    filename: str,
    data: bytes,
    *,
    caption: str | None = None,
    photo: bool = False,
    priority: Priority = Priority.REPLY,
) -> int:
    payload = {"filename": filename, "data": data.hex(), "caption": caption}
    kind = "photo" if photo else "document"
    return await _insert(conn, now, chat_id, kind, payload, priority, None)


async def _insert(
    conn: aiosqlite.Connection,
    now: datetime,
    chat_id: int,
    kind: str,
    payload: dict[str, Any],
    priority: Priority,
    ref: str | None,
) -> int:
    gate = reply_gate.get()
    if gate is not None and not gate.allows(chat_id):
        return 0  # a stranger had their one reply this minute: nothing queued
    return await outbox.insert(
        conn, now, int(priority), chat_id, kind, json.dumps(payload, ensure_ascii=False), ref
    )


def row_to_outgoing(r: aiosqlite.Row) -> Outgoing:
    return Outgoing(
        id=r["id"],
        priority=r["priority"],
        chat_id=r["chat_id"],
        kind=r["kind"],
        payload=json.loads(r["payload"]),
        ref=r["ref"],
        attempts=r["attempts"],
    )
