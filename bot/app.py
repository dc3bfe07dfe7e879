"""The one place the bot is assembled: database, study, clock, Application, sender, scheduler.

`diarybot run`, the test harness and the sandbox all go through `DiaryBot`, so what the tests
exercise is what runs in production.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import BotCommand, BotCommandScopeDefault, Update
from telegram.ext import Application, ApplicationBuilder

from bot.channels.config import routes_from_env
from bot.channels.dispatcher import ChannelDispatcher
from bot.clock import Clock, FakeClock
from bot.delivery.poller import DurablePoller
from bot.domain.study import Study
from bot.i18n import t
from bot.scheduler import DiaryScheduler
from bot.sender import Pacing, Sender
from bot.services import study_versions
from bot.services.diary import DiaryService
from bot.services.runtime import Runtime
from conversations import router
from storage import audit, repo
from storage.db import BeforeMigrate, Database, UpdateMark, handling_update

log = logging.getLogger(__name__)

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

    async def process_update(self, update: object) -> None:
        if isinstance(update, Update):
            if update.update_id <= self.last_update_id:
                return
            mark = UpdateMark(update.update_id)
            token = handling_update.set(mark)
            try:
                await super().process_update(update)
            finally:
                handling_update.reset(token)
                self.last_update_id = update.update_id
                rt: Runtime | None = self.bot_data.get("rt")
                if rt is not None and not mark.recorded:  # the handler wrote nothing
                    async with rt.db.transaction() as conn:
                        await repo.meta_set(conn, "last_update_id", str(update.update_id))
                for waiter in list(self.bot_data.get("update_waiters", [])):
                    waiter(update.update_id)
            return
        await super().process_update(update)


@dataclass
class DiaryBot:
    rt: Runtime
    app: DiaryApplication
    sender: Sender
    scheduler: DiaryScheduler
    diary: DiaryService
    extras: dict[str, object] = field(default_factory=dict)
    poller: DurablePoller | None = None
    channels: ChannelDispatcher | None = None  # SMS, WeCom, e-mail (bot/channels)
    _polling: bool = False

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
    ) -> DiaryBot:
        """`migrate`: upgrade an old database (`diarybot run`), after `before_migrate` (a
        verified backup); without it an old database raises storage.db.MigrationNeeded."""
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
        bot = cls(rt=rt, app=app, sender=None, scheduler=scheduler, diary=diary)  # type: ignore[arg-type]
        bot.sender = Sender(db, app.bot, clock, pacing=pacing, on_forbidden=bot._on_forbidden)
        routes = routes_from_env(study, development=clock.is_fake)
        bot.channels = ChannelDispatcher(db, clock, routes)
        rt.wake_sender = bot._wake_senders
        rt.wake_scheduler = scheduler.tick
        app.bot_data["rt"] = rt
        app.bot_data["diary"] = diary
        app.bot_data["scheduler"] = scheduler
        app.bot_data.setdefault("extra_commands", {})
        app.bot_data.setdefault("staff_buttons", {})
        from bot import features

        features.install(bot)
        router.register(app)
        if isinstance(clock, FakeClock):
            clock.on_change(scheduler.tick)
        return bot

    async def start(self, *, poll_timeout: int = 10, poll_interval: float = 0.0) -> None:
        await self.app.initialize()
        me = await self.app.bot.get_me()
        self.rt.bot_username = me.username
        async with self.rt.db.transaction() as conn:
            await repo.meta_set(conn, "bot_username", me.username or "")
        await self._set_commands()
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
        # Catch up on anything due during downtime. Polling already runs, so patients and staff
        # are answered meanwhile: a long catch-up (the first start after an upgrade plans every
        # patient's follow-up) takes the write lock in batches, and the diary's own checks go
        # by the clock, not by whether the catch-up has marked a window missed yet.
        await self.scheduler.tick()
        log.info("bot @%s is running", me.username)

    async def stop(self) -> None:
        if self._polling and self.poller is not None:
            await self.poller.stop()
            self._polling = False
        self.scheduler.shutdown()
        await self.sender.stop()
        if self.channels is not None:
            await self.channels.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()
        await self.rt.db.close()

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
            cur = await conn.execute(
                "UPDATE patients SET unreachable = 1 WHERE chat_id = ? AND unreachable = 0",
                (chat_id,),
            )
            staff = await repo._one(
                conn, "SELECT role FROM staff WHERE telegram_id = ? AND active = 1", (chat_id,)
            )
            if staff is not None or str(chat_id) == await repo.meta_get(conn, "staff_group"):
                who = f"the {staff['role']} {chat_id}" if staff else "the study-team group"
                log.error(
                    "Telegram refused a message to %s (403: the bot was blocked or removed): "
                    "alerts for that chat are not delivered. Fix the chat or `diarybot staff`.",
                    who,
                )
            if cur.rowcount:
                row = await repo._one(
                    conn, "SELECT subject FROM patients WHERE chat_id = ?", (chat_id,)
                )
                await audit.record(
                    conn,
                    now,
                    "system",
                    "unreachable",
                    subject=row["subject"] if row else None,
                    new="blocked",
                )
                hooks: Any = self.extras.get("on_unreachable", [])
                for hook in hooks:
                    await hook(conn, chat_id, now)
