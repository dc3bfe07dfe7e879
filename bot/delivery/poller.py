"""Long polling that confirms an update to Telegram only after the bot has processed it.

python-telegram-bot's `Updater` confirms updates (the `offset` of the next `getUpdates`) as
soon as it has *fetched* them into the update queue, and on shutdown it confirms everything it
fetched. If the process dies with updates still in the queue, Telegram has forgotten them and
so has the bot: a typed answer or a button tap is lost without a trace.

Here the next `getUpdates` asks from the last *processed* update id (stored in SQLite by
`DiaryApplication`), so anything fetched but not processed before a crash is delivered again,
and `DiaryApplication` skips what was already processed. Updates still go through PTB's update
queue and `Application.process_update`, so handlers see exactly what they would under PTB's
own polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, TelegramError, TimedOut

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


class DurablePoller:
    def __init__(self, app: Any, *, timeout: int = 10, interval: float = 0.0) -> None:
        self.app = app
        self.timeout = timeout
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._processed = asyncio.Event()
        self.batches = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        # getUpdates is refused while a webhook is set; keep pending updates (never drop them).
        await self.app.bot.delete_webhook(drop_pending_updates=False)
        self.app.bot_data.setdefault("update_waiters", []).append(self._on_processed)
        self._task = asyncio.create_task(self._run(), name="durable-poller")

    async def stop(self) -> None:
        if self._task is None:
            return
        # A flag as well as cancel(): the HTTP layer may turn the cancellation of a long poll
        # into a NetworkError, which the loop would otherwise retry.
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        waiters = self.app.bot_data.get("update_waiters", [])
        if self._on_processed in waiters:
            waiters.remove(self._on_processed)
        # Confirm what was processed, so a restart does not fetch it again (harmless if it
        # did: processed updates are skipped). Unprocessed ones stay with Telegram.
        with contextlib.suppress(TelegramError):
            await self.app.bot.get_updates(offset=self.app.last_update_id + 1, timeout=0)

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        backoff = 0.0
        while not self._stopping:
            try:
                updates = await self.app.bot.get_updates(
                    offset=self.app.last_update_id + 1,
                    timeout=self.timeout,
                    allowed_updates=Update.ALL_TYPES,
                )
                backoff = 0.0
                for listener in self.app.bot_data.get("poll_ok", ()):
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
            if updates:
                self.batches += 1
                for update in updates:
                    await self.app.update_queue.put(update)
                await self._wait_processed(updates[-1].update_id)
            if self.interval:
                await asyncio.sleep(self.interval)

    async def _wait_processed(self, update_id: int) -> None:
        """Until `DiaryApplication` has processed (or skipped) `update_id`."""
        while self.app.last_update_id < update_id:
            self._processed.clear()
            if self.app.last_update_id >= update_id:
                return
            # The timeout only guards against a missed notification (e.g. an error while the
            # id was being stored); the waiter normally wakes us at once.
            with contextlib.suppress(TimeoutError):  # (asyncio.timeout: see bot/sender.py)
                async with asyncio.timeout(1.0):
                    await self._processed.wait()

    def _on_processed(self, update_id: int) -> None:
        self._processed.set()
