"""The one place the bot is assembled: database, study, clock, Application, sender, scheduler.

`diarybot run`, the test harness and the sandbox all go through `DiaryBot`, so what the tests
exercise is what runs in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import re
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from telegram import BotCommand, BotCommandScopeDefault, Update
from telegram.error import InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, ApplicationBuilder

from bot import features
from bot.channels.base import Route
from bot.channels.config import routes_from_env
from bot.channels.dispatcher import ChannelDispatcher
from bot.clock import Clock, FakeClock
from bot.delivery.inbound import InboundLimits
from bot.delivery.poller import DurablePoller, UpdateNotProcessed
from bot.domain.study import Study
from bot.i18n import t
from bot.ops.lock import DatabaseLock
from bot.registry import Hooks, attach
from bot.scheduler import DiaryScheduler
from bot.sender import Pacing, Sender
from bot.services import study_versions
from bot.services.diary import DiaryService
from bot.services.runtime import Runtime
from conversations import router
from storage import audit, repo
from storage.db import BeforeMigrate, Database, UpdateMark, handling_update

log = logging.getLogger(__name__)

T_ = TypeVar("T_")
START_BACKOFF_MAX = 30.0
WATCH_SECONDS = 5.0

PATIENT_COMMANDS = ("diary", "schedule", "progress", "settings", "help")


class DiaryApplication(Application):
    """Processes each Telegram update once.

    Telegram re-delivers updates whose offset was not confirmed (e.g. after a crash). The last
    processed update_id is stored; anything at or below it is skipped. It is stored in the same
    transaction as each of the handler's writes (`storage.db.handling_update`): after a crash,
    an update none of whose writes was committed is handled again, and one whose write was
    committed is skipped, so a tap (e.g. a multi-select toggle) is never applied twice.
    """

    last_update_id: int = 0
    saved_update_id: int = 0  # what the database holds, as far as this process knows

    async def process_update(self, update: object) -> None:
        """Handle `update` once. Raises `UpdateNotProcessed` if a write failed before anything
        of it was committed (the poller handles it again after a backoff)."""
        if isinstance(update, Update):
            if update.update_id <= self.last_update_id:
                return
            mark = UpdateMark(update.update_id)
            token = handling_update.set(mark)
            try:
                await super().process_update(update)
            finally:
                handling_update.reset(token)
            if mark.failed is not None and not mark.recorded:
                raise UpdateNotProcessed(update.update_id, mark.failed)
            if mark.failed is not None:  # a later write of a handler that already committed
                log.error(
                    "update %d: a write failed after the update was recorded (%s)",
                    update.update_id,
                    type(mark.failed).__name__,
                )
            if mark.recorded:
                self.saved_update_id = max(self.saved_update_id, update.update_id)
            else:  # the handler wrote nothing: record it now
                try:
                    await self._save_mark(update.update_id)
                except sqlite3.OperationalError as exc:
                    raise UpdateNotProcessed(update.update_id, exc) from exc
            self.last_update_id = update.update_id
            return
        await super().process_update(update)

    async def process_error(
        self,
        update: object | None,
        error: Exception,
        job: Any = None,
        coroutine: Any = None,
    ) -> bool:
        """A handler's write failed (disk full, locked, read-only): stop handling this update;
        `process_update` reports it so the poller tries it again."""
        mark = handling_update.get()
        if mark is not None and isinstance(error, sqlite3.OperationalError):
            mark.failed = error
            return True
        return await super().process_error(update, error, job, coroutine)

    async def skip_update(
        self, update_id: int, write: Callable[[aiosqlite.Connection], Awaitable[None]]
    ) -> None:
        """Mark `update_id` processed without handling it, with `write` in the same commit."""
        rt: Runtime = self.bot_data["rt"]
        mark = UpdateMark(update_id)
        token = handling_update.set(mark)
        try:
            async with rt.db.transaction() as conn:
                await write(conn)
        finally:
            handling_update.reset(token)
        self.saved_update_id = max(self.saved_update_id, update_id)
        self.last_update_id = max(self.last_update_id, update_id)

    def skip_quietly(self, update_id: int) -> None:
        """Dropped on purpose (flood limit): processed, nothing written for it now."""
        self.last_update_id = max(self.last_update_id, update_id)

    async def save_update_mark(self) -> None:
        """Store the last processed id if updates dropped on purpose left it unsaved."""
        if self.last_update_id > self.saved_update_id:
            await self._save_mark(self.last_update_id)

    async def _save_mark(self, update_id: int) -> None:
        rt: Runtime | None = self.bot_data.get("rt")
        if rt is None:
            return
        async with rt.db.transaction() as conn:
            await repo.meta_set(conn, "last_update_id", str(update_id))
        self.saved_update_id = max(self.saved_update_id, update_id)


@dataclass
class DiaryBot:
    rt: Runtime
    app: DiaryApplication
    sender: Sender
    scheduler: DiaryScheduler
    diary: DiaryService
    hooks: Hooks = field(default_factory=Hooks)  # what the features plugged in (bot/registry.py)
    poller: DurablePoller | None = None
    channels: ChannelDispatcher | None = None  # SMS, WeCom, e-mail (bot/channels)
    _polling: bool = False
    lock: DatabaseLock | None = None
    _stopping: bool = False
    _failure: asyncio.Future[str] | None = None
    _watchdog: asyncio.Task[None] | None = None

    @classmethod
    async def create(
        cls,
        *,
        db_path: str | Path,
        study: Study,
        clock: Clock,
        token: str,
        base_url: str | None = None,
        base_file_url: str | None = None,
        pacing: Pacing | None = None,
        read_timeout: float = 15,
        proxy: str | None = None,
        migrate: bool = False,
        before_migrate: BeforeMigrate | None = None,
        lock: DatabaseLock | None = None,
        inbound: InboundLimits | None = None,
        routes: list[Route] | None = None,
    ) -> DiaryBot:
        """`migrate`: upgrade an old database (`diarybot run`), after `before_migrate` (a
        verified backup); without it an old database raises storage.db.MigrationNeeded.
        `lock`: the database's bot lock (bot/ops/lock.py) the caller took; released by stop().
        `inbound`: per-user flood limits (bot/delivery/inbound.py; tests: NO_LIMITS).
        `routes`: the SMS / WeCom / e-mail routes (the sandbox's own); default from the
        environment (bot/channels/config.py)."""
        db = await Database.open(db_path, migrate=migrate, before_migrate=before_migrate)
        try:
            # the study file as a version; a change removing used option codes stops here
            await study_versions.register(db, study, clock.now())
        except BaseException:
            await db.close()
            raise
        rt = Runtime(db=db, study=study, clock=clock)
        rt.bot_username = await repo.meta_get(db.conn, "bot_username")
        builder = (
            ApplicationBuilder()
            .application_class(DiaryApplication)
            .token(token)
            .concurrent_updates(False)  # one update at a time: a double tap is seen in order
            .connect_timeout(10)
            .read_timeout(read_timeout)
            .write_timeout(15)
            .pool_timeout(10)
            .connection_pool_size(32)
            .get_updates_read_timeout(40)
        )
        if base_url:
            builder = builder.base_url(base_url)
        if base_file_url:
            builder = builder.base_file_url(base_file_url)
        if proxy:  # TELEGRAM_PROXY: every Bot API call, getUpdates included, goes through it
            builder = builder.proxy(proxy).get_updates_proxy(proxy)
        app: Any = builder.build()
        app.last_update_id = int(await repo.meta_get(db.conn, "last_update_id") or 0)
        diary = DiaryService(rt)
        scheduler = DiaryScheduler(rt)
        bot = cls(rt=rt, app=app, sender=None, scheduler=scheduler, diary=diary, lock=lock)  # type: ignore[arg-type]
        bot.hooks.inbound_limits = inbound  # per-user flood limits (bot/delivery/inbound.py)
        bot.sender = Sender(db, app.bot, clock, pacing=pacing, on_forbidden=bot._on_forbidden)
        if routes is None:
            routes = routes_from_env(study, development=clock.is_fake)
        bot.channels = ChannelDispatcher(db, clock, routes)
        rt.wake_sender = bot._wake_senders
        rt.wake_scheduler = scheduler.tick
        app.bot_data["rt"] = rt
        app.bot_data["diary"] = diary
        app.bot_data["scheduler"] = scheduler
        attach(app, bot.hooks)
        features.install(bot)
        router.register(app)
        if isinstance(clock, FakeClock):
            clock.on_change(scheduler.tick)
        return bot

    async def start(self, *, poll_timeout: int = 10, poll_interval: float = 0.0) -> None:
        """Connect to Telegram and start every task. Telegram being unreachable or answering
        5xx is retried with backoff (for ever: cancel to give up); a rejected token raises
        `InvalidToken`. Whatever fails, the bot is stopped (database closed) before it raises.
        """
        try:
            await self._start(poll_timeout, poll_interval)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, poll_timeout: int, poll_interval: float) -> None:
        self._failure = asyncio.get_running_loop().create_future()
        await _retrying("connecting to Telegram", self.app.initialize)
        me = await _retrying("getMe", self.app.bot.get_me)
        self.rt.bot_username = me.username
        async with self.rt.db.transaction() as conn:
            await repo.meta_set(conn, "bot_username", me.username or "")
        await _retrying("setMyCommands", self._set_commands)
        # getUpdates is refused while a webhook is set; keep pending updates (never drop them).
        await _retrying(
            "deleteWebhook", lambda: self.app.bot.delete_webhook(drop_pending_updates=False)
        )
        await self.app.start()
        self.sender.start()
        if self.channels is not None:
            self.channels.start()
        self.scheduler.start()
        # Not PTB's Updater: it confirms updates to Telegram before they are processed, so a
        # crash would lose them. DurablePoller confirms only what was processed (delivery).
        self.poller = DurablePoller(self.app, timeout=poll_timeout, interval=poll_interval)
        await self.poller.start()
        self._polling = True
        for name, task in (("poller", self.poller.task), ("sender", self.sender.task)):
            if task is not None:
                task.add_done_callback(functools.partial(self._task_ended, name))
        self._watchdog = asyncio.create_task(self._watch(), name="bot-watchdog")
        # Catch up on anything due during downtime. Polling already runs, so patients and staff
        # are answered meanwhile: a long catch-up (the first start after an upgrade plans every
        # patient's follow-up) takes the write lock in batches, and the diary's own checks go
        # by the clock, not by whether the catch-up has marked a window missed yet.
        await self.scheduler.tick()
        log.info("bot @%s is running", me.username)

    async def failed(self) -> str:
        """Wait until a task the bot depends on ended unexpectedly; returns why.

        `diarybot run` exits non-zero then, so the service manager restarts the bot instead of
        leaving a process that looks healthy and handles nothing.
        """
        assert self._failure is not None, "start() first"
        return await asyncio.shield(self._failure)

    def _fail(self, why: str) -> None:
        if self._stopping or self._failure is None or self._failure.done():
            return
        log.critical("%s; the bot stops", why)
        self._failure.set_result(why)

    def _task_ended(self, name: str, task: asyncio.Task[None]) -> None:
        if self._stopping or task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self._fail(f"the {name} task ended unexpectedly")
        else:
            self._fail(f"the {name} task died: {describe_error(exc)}")

    async def _watch(self) -> None:
        """Every few seconds: the database file is still ours, the scheduler still runs."""
        while not self._stopping:
            await asyncio.sleep(WATCH_SECONDS)
            problem = self.rt.db.missing()
            if problem is not None:
                self._fail(problem)
            elif self.scheduler.aps is None or not self.scheduler.aps.running:
                self._fail("the scheduler stopped")

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        try:
            if self._polling and self.poller is not None:
                await self.poller.stop()
                self._polling = False
            self.scheduler.shutdown()
            await self.sender.stop()
            if self.channels is not None:
                await self.channels.stop()
            if self.app.running:
                await self.app.stop()
            with contextlib.suppress(Exception):  # e.g. a half-initialized HTTP client
                await self.app.shutdown()
        finally:
            await self.rt.db.close()
            if self.lock is not None:
                self.lock.release()

    def _wake_senders(self) -> None:
        self.sender.wake()
        if self.channels is not None:
            self.channels.wake()

    async def _set_commands(self) -> None:
        for locale, lang_code in (("en", None), ("zh_Hans", "zh")):
            _ = t(locale)
            descriptions = {
                "diary": _("Fill in today's diary"),
                "schedule": _("Your next diary and visit"),
                "settings": _("Language, reminder time, time zone"),
                "help": _("What this bot is for; study contact"),
                "progress": _("A chart of your last 30 days"),
            }
            commands = [BotCommand(c, descriptions[c]) for c in PATIENT_COMMANDS]
            await self.app.bot.set_my_commands(
                commands, scope=BotCommandScopeDefault(), language_code=lang_code
            )

    async def _on_forbidden(self, chat_id: int) -> None:
        """The patient blocked the bot: stop prompting them; the team is told (escalation).

        A staff member's chat or the study-team group refusing (blocked, bot removed from the
        group) is an operator's problem: alerts sent there are lost until it is fixed, so it
        is logged as an error every time (the other coordinators still get their copies).
        """
        now = self.rt.now()
        async with self.rt.db.transaction() as conn:
            blocked = await repo.mark_unreachable(conn, chat_id)
            staff = await repo.staff_by_id(conn, chat_id)
            if staff is not None or str(chat_id) == await repo.meta_get(conn, "staff_group"):
                who = f"the {staff.role} {chat_id}" if staff else "the study-team group"
                log.error(
                    "Telegram refused a message to %s (403: the bot was blocked or removed): "
                    "alerts for that chat are not delivered. Fix the chat or `diarybot staff`.",
                    who,
                )
            if blocked:
                await audit.record(
                    conn,
                    now,
                    "system",
                    "unreachable",
                    subject=await repo.subject_by_chat(conn, chat_id),
                    new="blocked",
                )
                for hook in self.hooks.on_unreachable:
                    await hook(conn, chat_id, now)


async def _retrying(what: str, call: Callable[[], Awaitable[T_]]) -> T_:
    """`call()` until it succeeds: Telegram unreachable, timing out, answering 5xx or 429 is
    retried with backoff (0.5 s doubling to 30 s, jittered); a rejected token (401/404,
    `InvalidToken`) and any other refusal raise at once."""
    delay = 0.5
    while True:
        try:
            return await call()
        except InvalidToken:
            raise
        except RetryAfter as exc:
            wait = exc.retry_after
            pause = wait.total_seconds() if hasattr(wait, "total_seconds") else float(wait)
        except NetworkError as exc:  # timeouts, refused connections, 5xx
            pause = delay * (0.5 + random.random())
            delay = min(START_BACKOFF_MAX, delay * 2)
            log.warning(
                "start-up: %s failed (%s); retrying in %.1f s", what, describe_error(exc), pause
            )
        await asyncio.sleep(pause)


def describe_error(exc: BaseException) -> str:
    """The error's type and text, with anything shaped like a bot token taken out."""
    if isinstance(exc, InvalidToken):
        return "InvalidToken"  # PTB puts the token itself into this one's text
    text = _TOKEN.sub("<token>", str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_TOKEN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{8,}")
