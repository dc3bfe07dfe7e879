"""Outbox retention: sent messages lose their text after the study's `message_text_keep_days`.

The outbox must hold a message's text until Telegram has it (that is what makes delivery
durable); after that the text is a second, unaudited copy of what the patient was told, with
free text and subject IDs in it. The answers and the audit trail are the study's record, so a
sent row keeps its metadata (chat, kind, ref, Telegram message id, times) and loses `text`,
`buttons` and `caption` once it is older than the retention period. A sent file's bytes are
dropped as soon as it is sent (`Sender._finish`): an export must not live on in the outbox.

Driven by the scheduler's tick (at most every `PRUNE_EVERY` of clock time), in batches, so a
first run over a long history never holds the write lock for long.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import aiosqlite

from bot.services.runtime import Runtime
from storage import delivery as store

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=1)
BATCH = 500


async def prune(conn: aiosqlite.Connection, now: datetime, keep: timedelta) -> int:
    """Strip the text of up to BATCH rows sent before `now - keep`; how many were stripped."""
    return await store.prune_sent(conn, now, now - keep, BATCH)


class OutboxRetention:
    """A scheduler tick hook: prune what has aged past the retention period."""

    def __init__(self, rt: Runtime, every: timedelta = PRUNE_EVERY) -> None:
        self.rt = rt
        self.every = every
        self.last: datetime | None = None
        self.pruned = 0

    async def on_tick(self, now: datetime) -> None:
        if self.last is not None and now - self.last < self.every:
            return
        self.last = now
        keep = timedelta(days=self.rt.study.message_text_keep_days)
        while True:
            async with self.rt.db.transaction() as conn:
                done = await prune(conn, now, keep)
            self.pruned += done
            if done < BATCH:
                break
        if self.pruned:
            log.debug("outbox retention: %d messages stripped of their text so far", self.pruned)
