"""A patient who blocked the bot is reachable again the moment they write to it.

`Forbidden` from Telegram marks the patient unreachable (bot/app.py `_on_forbidden`): prompts
stop and the team is told. Any update from that patient's private chat — a message, a
command, a button tap — proves the block was lifted. This runs before every other handler
(group -2), never stops them, and clears the flag with an audit entry in one transaction; the
scheduler is woken so a diary window that is still open gets its prompt. Which chats are
flagged is kept in memory (`UnreachableChats`), so the other 99.9 % of updates cost nothing.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime

import aiosqlite
from telegram import Update
from telegram.ext import ContextTypes

from bot.registry import ChatHook, hooks_of
from bot.services.runtime import Runtime
from storage import audit
from storage import delivery as store
from storage.db import handling_update

log = logging.getLogger(__name__)

ReachableHook = ChatHook


async def mark_reachable(
    rt: Runtime, user_id: int, chat_id: int, hooks: list[ReachableHook]
) -> str | None:
    """Clear `unreachable` for the patient with this Telegram user; their subject if it was set.

    The hooks (e.g. escalation closing its compliance alert) run inside the same transaction.
    """
    patient_id = await store.unreachable_patient_id(rt.db.conn, user_id, chat_id)
    if patient_id is None:  # the common case: one indexed lookup, no write
        return None
    now = rt.now()
    async with rt.db.transaction() as conn:
        found = await store.clear_unreachable(conn, patient_id)
        if found is None:
            return None
        subject = found
        await audit.record(
            conn,
            now,
            f"patient:{subject}",
            "reachable",
            subject=subject,
            old="blocked",
            new="reachable",
            reason="the patient wrote to the bot again",
        )
        for hook in hooks:
            await hook(conn, chat_id, now)
    return subject


class UnreachableChats:
    """The chats of patients marked unreachable, kept in memory.

    Every update asks "is this chat marked unreachable?"; a database round trip each time would
    cost every patient's every tap for a rare event. The sender's `on_unreachable` hook adds a
    chat at once; the set is also reloaded every `refresh` seconds, so a flag written by
    another process is seen too.
    """

    def __init__(self, rt: Runtime, refresh: float = 60.0) -> None:
        self.rt = rt
        self.refresh = refresh
        self.chats: set[int] = set()
        self._loaded_at = -math.inf

    async def contains(self, chat_id: int) -> bool:
        if time.monotonic() - self._loaded_at > self.refresh:
            self.chats = await store.unreachable_chats(self.rt.db.conn)
            self._loaded_at = time.monotonic()
        return chat_id in self.chats

    async def on_unreachable(self, conn: aiosqlite.Connection, chat_id: int, now: datetime) -> None:
        self.chats.add(chat_id)

    async def on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """TypeHandler(Update) in group -2: never raises ApplicationHandlerStop."""
        if not isinstance(update, Update):
            return
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None or chat.type != "private":
            return
        if not await self.contains(chat.id):
            return
        self.chats.discard(chat.id)
        hooks: list[ReachableHook] = list(hooks_of(context).on_reachable)
        # Not part of handling the update: the first commit made while handling an update marks
        # it processed (storage.db.handling_update), and a crash right after this one must not
        # make the patient's message itself be skipped on restart. Repeating this is harmless.
        token = handling_update.set(None)
        try:
            subject = await mark_reachable(self.rt, user.id, chat.id, hooks)
            if subject is not None:
                log.info("patient %s is reachable again", subject)
                await self.rt.poke_scheduler()  # prompts resume: an open window is prompted
        finally:
            handling_update.reset(token)
