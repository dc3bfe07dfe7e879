"""Long polling that confirms an update to Telegram only after the bot has processed it.

python-telegram-bot's `Updater` confirms updates (the `offset` of the next `getUpdates`) as
soon as it has *fetched* them into the update queue, and on shutdown it confirms everything it
fetched. If the process dies with updates still in the queue, Telegram has forgotten them and
so has the bot: a typed answer or a button tap is lost without a trace.

Here the next `getUpdates` asks from the last *processed* update id (stored in SQLite by
`DiaryApplication`), so anything fetched but not processed before a crash is delivered again,
and `DiaryApplication` skips what was already processed. Each update goes through
`Application.process_update`, so handlers see exactly what they would under PTB's own polling.

Polling never stops by itself (issue 11 §2):
- updates are fetched as raw JSON and parsed one by one: one that python-telegram-bot cannot
  parse is stored raw in `unparsable_updates` (for support), logged once by its id only, and
  skipped — PTB's own `get_updates` would fail the whole batch, forever;
- an update whose handler could not write (disk full, database locked beyond the busy
  timeout, read-only) is not marked processed: it is handled again after a backoff, until the
  cause goes away;
- a database file that disappeared stops the poller (the process exits; nothing is handled
  into a file nobody can read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from typing import Any

from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, TelegramError, TimedOut

from bot.registry import app_hooks
from storage import updates as stored_updates

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
BATCH = 100  # updates per getUpdates (Telegram's maximum and default)


class _NoUpdateDump(logging.Filter):
    """python-telegram-bot logs a batch it cannot parse at CRITICAL with the whole raw batch
    (patients' answers, names): keep the line, drop the data."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Error while parsing updates"):
            record.msg = "Error while parsing updates (raw data not logged)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


for _name in ("telegram.Bot", "telegram.ext.ExtBot"):
    logging.getLogger(_name).addFilter(_NoUpdateDump())


class DatabaseGone(RuntimeError):
    """The database file was deleted or replaced while the bot ran."""


class UpdateNotProcessed(Exception):
    """A handler's write failed and nothing of the update was committed: handle it again."""

    def __init__(self, update_id: int, cause: BaseException) -> None:
        super().__init__(f"update {update_id}: {type(cause).__name__}: {cause}")
        self.update_id = update_id
        self.cause = cause


class DurablePoller:
    def __init__(self, app: Any, *, timeout: int = 10, interval: float = 0.0) -> None:
        self.app = app
        self.timeout = timeout
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0
        self.retries = 0
        self.unparsable = 0
        self._saved_at = 0.0

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="durable-poller")

    async def stop(self) -> None:
        if self._task is None:
            return
        # A flag as well as cancel(): the HTTP layer may turn the cancellation of a long poll
        # into a NetworkError, which the loop would otherwise retry.
        self._stopping = True
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        except Exception:  # it died earlier; the bot reported why (DiaryBot.failed)
            log.debug("poller had stopped", exc_info=True)
        self._task = None
        # Confirm what was processed, so a restart does not fetch it again (harmless if it
        # did: processed updates are skipped). Unprocessed ones stay with Telegram.
        with contextlib.suppress(TelegramError, sqlite3.Error):
            await self.app.save_update_mark()
            await self._fetch(self.app.last_update_id + 1, 0)

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        backoff = 0.0
        while not self._stopping:
            try:
                raw = await self._fetch(self.app.last_update_id + 1, self.timeout)
                backoff = 0.0
                for listener in app_hooks(self.app).poll_ok:
                    listener()  # bot/ops/monitor.py: when polling last succeeded
            except asyncio.CancelledError:
                raise
            except InvalidToken:
                log.critical("Telegram refused the bot token; polling stopped")
                raise
            except TimedOut:
                continue  # a long poll that outlived the read timeout (or stop(): see the loop)
            except (Conflict, NetworkError, TelegramError) as exc:
                if self._stopping:
                    return
                backoff = min(MAX_BACKOFF, max(0.5, backoff * 2))
                log.warning(
                    "getUpdates failed (%s); retrying in %.1f s", type(exc).__name__, backoff
                )
                await asyncio.sleep(backoff)
                continue
            if raw:
                self.batches += 1
                self._check_database()
                for item in raw:
                    await self._one(item)
                await self._save_mark(backlog=len(raw) >= BATCH)
            if self.interval:
                await asyncio.sleep(self.interval)

    async def _fetch(self, offset: int, wait: int) -> list[Any]:
        """getUpdates as raw JSON: a batch is only parsed update by update (see the module)."""
        bot = self.app.bot
        # What Bot.get_updates does: the long poll's timeout on top of the read timeout.
        read_timeout = (bot._request[0].read_timeout or 0) + wait
        result = await bot._post(  # the raw answer, unparsed
            "getUpdates",
            {"offset": offset, "timeout": wait, "allowed_updates": list(Update.ALL_TYPES)},
            read_timeout=read_timeout,
        )
        return list(result) if isinstance(result, list) else []

    async def _one(self, item: Any) -> None:
        update_id = item.get("update_id") if isinstance(item, dict) else None
        if not isinstance(update_id, int):
            log.error("getUpdates returned an entry without an update id; skipped")
            return
        if update_id <= self.app.last_update_id:
            return
        admit = app_hooks(self.app).admit_update  # the flood guard (bot/delivery/inbound)
        if admit is not None and not await admit(item):
            self.app.skip_quietly(update_id)  # saved once for the batch (_save_mark)
            return
        try:
            update = Update.de_json(item, self.app.bot)
        except Exception as exc:  # python-telegram-bot cannot read it: keep it, skip it
            await self._unparsable(update_id, item, exc)
            return
        backoff = 0.0
        while True:
            try:
                await self.app.process_update(update)
                if backoff:
                    log.warning("update %d handled after the database recovered", update_id)
                return
            except UpdateNotProcessed as exc:
                self._check_database()
                self.retries += 1
                backoff = min(MAX_BACKOFF, max(0.5, backoff * 2))
                log.warning(
                    "update %d not processed: the database refused a write (%s); "
                    "retrying in %.1f s",
                    update_id,
                    _reason(exc.cause),
                    backoff,
                )
                await asyncio.sleep(backoff)

    async def _unparsable(self, update_id: int, item: dict[str, Any], exc: Exception) -> None:
        """Store it raw for support, log it once (its id and the error type only), skip it."""
        self.unparsable += 1
        log.error(
            "update %d could not be read (%s); stored for support in unparsable_updates, skipped",
            update_id,
            type(exc).__name__,
        )
        backoff = 0.0
        while True:
            try:
                await self.app.skip_update(
                    update_id,
                    lambda conn: stored_updates.store_unparsable(
                        conn, self.app.bot_data["rt"].now(), update_id, item, type(exc).__name__
                    ),
                )
                return
            except sqlite3.OperationalError as err:
                self._check_database()
                backoff = min(MAX_BACKOFF, max(0.5, backoff * 2))
                log.warning("could not store update %d (%s)", update_id, _reason(err))
                await asyncio.sleep(backoff)

    async def _save_mark(self, *, backlog: bool) -> None:
        """Updates dropped on purpose (flood limit) write nothing each: the last processed id
        is saved once the backlog is through, and at most once a second while a flood lasts
        (a commit waits for the disk; after a crash, dropped updates are only fetched again)."""
        now = time.monotonic()
        if backlog and now - self._saved_at < 1.0:
            return
        self._saved_at = now
        with contextlib.suppress(sqlite3.OperationalError):  # saved with the next write
            await self.app.save_update_mark()

    def _check_database(self) -> None:
        rt = self.app.bot_data.get("rt")
        problem = rt.db.missing() if rt is not None else None
        if problem is not None:
            raise DatabaseGone(problem)


def _reason(exc: BaseException) -> str:
    """The database's complaint (e.g. "database or disk is full"): never data, only the error."""
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, sqlite3.Error) else type(exc).__name__
