"""The sandbox world: the loopback Bot API, the real `DiaryBot`, a fake clock and the people.

Everything the page does goes through here, and everything here goes through the real bot:
a patient's tap is a callback query on the local Bot API that python-telegram-bot polls; moving
the clock is `FakeClock.set`, which runs `DiaryScheduler.tick`; enrolling is the enrolment
service the CLI uses. Time moves in steps, one for every moment something is due
(`DiaryScheduler.next_change`), so a day's prompts, reminders, closed windows and re-alerts each
happen at their own time, in order, as they would in a real day.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from bot.app import DiaryBot
from bot.channels.sms.base import SmsMessage
from bot.channels.sms.log import LogSms
from bot.channels.sms.route import SmsRoute
from bot.clock import Clock, FakeClock, iso
from bot.delivery.inbound import NO_LIMITS
from bot.domain.study import Study
from bot.localapi import LocalBotApi
from bot.localapi.state import BotApiState
from bot.ops import lock
from bot.sandbox import queries
from bot.sender import Pacing
from bot.services import patient_settings as ps
from bot.services.enrolment import enroll
from bot.web.app import WebDiary
from bot.web.server import WebConfig
from storage import audit, repo

log = logging.getLogger(__name__)

#: The local Bot API accepts any token; this one cannot be mistaken for a real one.
SANDBOX_TOKEN = "0:SANDBOX-LOCAL-ONLY"
#: The local server has no flood limits, so the sandbox paces chats lightly: a trainer tapping
#: through a diary, or a day of time travel, does not wait on Telegram's per-chat rate.
SANDBOX_PACING = Pacing(
    overall_per_second=1000,
    private_interval=0.05,
    private_burst=20,
    group_per_minute=1200,
    group_interval=0.05,
)
#: meta key marking a database as a sandbox database (only those are ever deleted).
MARKER_KEY = "sandbox"
#: At most this many scheduler steps per clock move; then the clock jumps to the target.
MAX_STEPS = 2000
#: Simulated Telegram users the page enrols get ids from here on.
FIRST_NEW_USER = 601


@dataclass(frozen=True)
class Sms:
    """One SMS the bot sent, with the study time it was sent at."""

    at: datetime
    to: str
    text: str
    purpose: str | None


class SandboxSms(LogSms):
    """The sandbox's only SMS provider: nothing is sent; the page shows each phone's inbox.

    The sandbox never uses a provider (nor WeCom, nor e-mail) from the environment."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.inbox: list[Sms] = []

    async def send(self, msg: SmsMessage) -> str | None:
        self.inbox.append(Sms(self.clock.now(), msg.to, msg.text, msg.purpose))
        return await super().send(msg)

    def to(self, phone: str) -> list[Sms]:
        return [m for m in self.inbox if m.to == phone]


def page_origins(port: int | None) -> tuple[str, ...]:
    """The sandbox page's origins (the only pages that may frame the web diary)."""
    if port is None:
        return ()
    return (f"http://127.0.0.1:{port}", f"http://localhost:{port}")


class SandboxError(Exception):
    """A refused sandbox action; the message is shown to the person using the page."""


def client_language(lang: str | None) -> str:
    """The `language_code` a Telegram app set to this language sends."""
    return "en" if lang == "en" else "zh-hans"


def prepare_database(path: Path) -> None:
    """Make room for a fresh sandbox database; never touch a file that is not one.

    Someone may point `--db` at the study's real database by mistake: only a file carrying the
    sandbox marker is deleted.
    """
    if path.exists():
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                row = conn.execute("SELECT value FROM meta WHERE key = ?", (MARKER_KEY,)).fetchone()
        except sqlite3.Error:
            row = None
        if row is None:
            raise SandboxError(
                f"{path} exists and is not a sandbox database; refusing to overwrite it"
            )
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Invite:
    """A subject enrolled from the page whose simulated phone has not sent the code yet."""

    subject: str
    code: str
    user_id: int


class Sandbox:
    """One sandbox: start it, play users, move time, read chats; stop it."""

    def __init__(
        self,
        db_path: Path,
        study: Study,
        start: datetime,
        *,
        pacing: Pacing = SANDBOX_PACING,
        page_port: int | None = None,
    ) -> None:
        self.db_path = db_path
        self.study = study
        self.clock = FakeClock(start)
        self.pacing = pacing
        self.api = LocalBotApi(bot_username="nct_diary_sandbox_bot")
        # Telegram stamps messages with its own time; here that is the study's fake time, so a
        # bubble shows when it happened in the story, not when the trainer clicked.
        self.api.state = BotApiState(self.api.bot_user, clock=lambda: self.clock.now().timestamp())
        self._bot: DiaryBot | None = None
        self.sms = SandboxSms(self.clock)
        #: The web diary (bot/web) on its own loopback port; the page at `page_port` (the only
        #: origin allowed to) shows it in a phone-sized frame.
        self.web: WebDiary | None = None
        self.page_port = page_port
        self.clients: dict[int, str] = {}  # user id -> Telegram app language_code
        self.names: dict[int, str] = {}  # user id -> first name the Telegram app reports
        self.invites: dict[str, Invite] = {}
        self.toast_owner: dict[str, int] = {}  # callback query id -> user who pressed
        self._last_update = 0
        self._raw_messages = 0
        self._time_lock = asyncio.Lock()
        #: False while the demo story is being played: the page watches but cannot act.
        self.ready = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def bot(self) -> DiaryBot:
        if self._bot is None:
            raise RuntimeError("sandbox not started")
        return self._bot

    async def start(self, host: str = "127.0.0.1") -> None:
        # One bot per database, checked before the old sandbox file is cleared away (raises
        # bot.ops.lock.Locked while another bot or sandbox uses it). On a first run the folder
        # (sandbox-data/) does not exist yet: the lock file lives in it.
        Path(self.db_path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        held = lock.acquire(self.db_path)
        try:
            await asyncio.to_thread(prepare_database, self.db_path)
            await self.api.start(host=host)
        except BaseException:
            held.release()
            raise
        self._bot = await DiaryBot.create(
            db_path=self.db_path,
            study=self.study,
            clock=self.clock,
            token=SANDBOX_TOKEN,
            base_url=self.api.base_url,
            base_file_url=self.api.base_file_url,
            pacing=self.pacing,
            lock=held,
            # The sandbox's clock stands still between clicks: per-second limits would
            # count a whole session as one instant.
            inbound=NO_LIMITS,
            # SMS for web patients land in the page's SMS inbox; no other route runs.
            routes=[SmsRoute(self.sms, rate=1000.0, burst=100)],
        )
        async with self.bot.rt.db.transaction() as conn:
            await repo.meta_set(conn, MARKER_KEY, "1")
        await self.bot.start(poll_timeout=1)
        web = WebDiary(
            self.bot.rt,
            self.bot.diary,
            f"{host}:0",
            WebConfig(frame_ancestors=page_origins(self.page_port)),
        )
        await web.start()
        self.web = web
        # The address in the SMS (the personal link, the prompts): this web diary.
        self.bot.rt.public_url = f"http://{web.bound}"

    @property
    def web_port(self) -> int | None:
        return None if self.web is None else int(self.web.bound.rsplit(":", 1)[1])

    async def stop(self) -> None:
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self._bot is not None:
            await self._bot.stop()
            self._bot = None
        await self.api.stop()

    @property
    def now(self) -> datetime:
        return self.clock.now()

    @property
    def busy(self) -> bool:
        """The clock is moving (the page disables the clock buttons meanwhile)."""
        return self._time_lock.locked()

    # ------------------------------------------------------------------ waiting for work
    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until the bot has handled every user action and delivered what it queued.

        Waits for work, not for study time; bounded so a stuck delivery cannot hang the page.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.bot.app.last_update_id < self._last_update:
            if loop.time() > deadline:
                raise SandboxError("the bot did not answer in time")
            await asyncio.sleep(0.005)
        try:
            await self.bot.sender.wait_idle(timeout=max(0.1, deadline - loop.time()))
            if self.bot.channels is not None:  # the SMS of web patients
                await self.bot.channels.wait_idle(timeout=max(0.1, deadline - loop.time()))
        except TimeoutError:
            log.warning("sandbox: outbox not drained within %.0f s", timeout)

    def _queued(self) -> None:
        """Remember the update a user action just queued (settle waits for it)."""
        if self.api.state.updates:
            self._last_update = max(self._last_update, self.api.state.updates[-1]["update_id"])

    # ------------------------------------------------------------------ playing users
    def add_person(self, user_id: int, name: str, lang: str | None) -> None:
        self.names[user_id] = name
        self.clients[user_id] = client_language(lang)

    async def send_text(self, user_id: int, text: str) -> None:
        """The person types `text` into their private chat with the bot."""
        text = text.strip()
        if not text:
            raise SandboxError("empty message")
        self.api.send_text(
            user_id,
            text,
            language_code=self.clients.get(user_id, "zh-hans"),
            first_name=self.names.get(user_id, "Test"),
        )
        self._queued()
        await self.settle()

    async def press(self, user_id: int, message_id: int, data: str) -> str:
        """The person taps an inline button of bot message `message_id`."""
        query_id = self.api.press(
            user_id, message_id, data, language_code=self.clients.get(user_id, "zh-hans")
        )
        self.toast_owner[query_id] = user_id
        self._queued()
        await self.settle()
        return query_id

    async def edit_text(self, user_id: int, message_id: int, text: str) -> None:
        """The person edits a message they sent earlier (Telegram sends `edited_message`)."""
        self.api.edit_text(user_id, message_id, text)
        self._queued()
        await self.settle()

    async def send_in_group(self, user_id: int, group_id: int, text: str) -> None:
        """The person writes in a group chat the bot is in."""
        self.api.send_text(
            user_id,
            text,
            chat_id=group_id,
            chat_type="group",
            language_code=self.clients.get(user_id, "zh-hans"),
            first_name=self.names.get(user_id, "Test"),
        )
        self._queued()
        await self.settle()

    async def send_location(self, user_id: int) -> None:
        """The person shares a location: something that is neither text nor a button tap."""
        self._raw_messages += 1
        self.api.add_raw_update(
            {
                "message": {
                    "message_id": 10_000_000 + self._raw_messages,
                    "date": int(self.now.timestamp()),
                    "chat": self.api.state.chat(user_id, "private"),
                    "from": self.api.state.user(user_id, None, self.clients.get(user_id)),
                    "location": {"latitude": 31.2, "longitude": 121.5},
                }
            }
        )
        self._queued()
        await self.settle()

    # ------------------------------------------------------------------ time travel
    async def advance(self, delta: timedelta) -> int:
        return await self.travel_to(self.now + delta)

    async def to_next_prompt(self) -> queries.Due | None:
        due = await queries.next_prompt(self.bot.rt.db, self.now)
        if due is not None:
            await self.travel_to(due.at)
        return due

    async def travel_to(self, target: datetime) -> int:
        """Move the clock to `target`, stopping at every moment something is due on the way.

        Each stop runs the scheduler's tick (through `FakeClock.set`) and waits until what it
        sent is delivered, so messages carry the time they belong to. Returns the stops made.
        """
        if target <= self.now:
            raise SandboxError("time only moves forward")
        async with self._time_lock:
            steps = 0
            while steps < MAX_STEPS:
                now = self.now
                nxt = await self.bot.scheduler.next_change(now)
                if nxt is None or nxt >= target:
                    break
                await self.clock.set(max(nxt, now + timedelta(seconds=1)))
                await self._drain()
                steps += 1
            if target > self.now:
                await self.clock.set(target)
                await self._drain()
                steps += 1
        return steps

    async def _drain(self) -> None:
        try:
            await self.bot.sender.wait_idle(timeout=10)
            if self.bot.channels is not None:
                await self.bot.channels.wait_idle(timeout=10)
        except TimeoutError:
            log.warning("sandbox: outbox not drained after a clock step")

    # ------------------------------------------------------------------ study team actions
    async def enroll(
        self,
        subject: str,
        injection_date: date,
        lang: str | None,
        prompt_time: time,
        *,
        user_id: int | None = None,
        client_lang: str | None = None,
    ) -> Invite:
        """Enrol a subject as the CLI does; a simulated phone (`user_id`, or a new one) will
        send the code. `client_lang` is the phone's language (default: the study language)."""
        result = await enroll(
            self.bot.rt,
            subject,
            injection_date,
            lang,
            self.study.timezone,
            prompt_time,
            actor="sandbox",
        )
        if user_id is None:
            taken = set(self.names) | {i.user_id for i in self.invites.values()}
            user_id = FIRST_NEW_USER
            while user_id in taken:
                user_id += 1
        invite = Invite(result.subject, result.code, user_id)
        self.invites[result.subject] = invite
        self.names[user_id] = "Patient"
        self.clients[user_id] = client_lang or client_language(lang)
        return invite

    async def enroll_web(
        self,
        subject: str,
        injection_date: date,
        lang: str | None,
        prompt_time: time,
        phone: str,
        birth_year: int,
    ) -> str:
        """Enrol a web-diary patient as the CLI does (`--channel web`); the personal link goes
        out by SMS (to the page's SMS inbox). Returns the link."""
        result = await enroll(
            self.bot.rt,
            subject,
            injection_date,
            lang,
            self.study.timezone,
            prompt_time,
            actor="sandbox",
            channel="web",
            phone=phone,
            birth_year=birth_year,
        )
        self.bot.rt.wake_sender()
        await self.settle()
        assert result.link is not None
        return result.link

    async def add_staff(self, telegram_id: int, role: str, name: str, lang: str) -> None:
        """Register a staff member exactly as `diarybot staff add` does (audited)."""
        now = self.now
        async with self.bot.rt.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO staff (telegram_id, role, name, lang, active, created_at)"
                " VALUES (?,?,?,?,1,?)",
                (telegram_id, role, name, lang, iso(now)),
            )
            await audit.record(
                conn,
                now,
                "sandbox",
                "staff_add",
                entity=f"staff:{telegram_id}",
                new={"role": role, "name": name, "lang": lang},
            )
        self.add_person(telegram_id, name, lang)

    async def set_staff_group(self, chat_id: int) -> None:
        now = self.now
        async with self.bot.rt.db.transaction() as conn:
            old = await repo.meta_get(conn, "staff_group")
            await repo.meta_set(conn, "staff_group", str(chat_id))
            await audit.record(conn, now, "sandbox", "staff_group", old=old, new=str(chat_id))

    # ------------------------------------------------------------------ languages
    async def set_patient_language(self, user_id: int, lang: str) -> None:
        """The patient's language, through the settings service (future messages follow it)."""
        db = self.bot.rt.db
        patient = await repo.patient_by_user(db.conn, user_id)
        if patient is None:
            subject = next((i.subject for i in self.invites.values() if i.user_id == user_id), None)
            patient = await repo.patient_by_subject(db.conn, subject) if subject else None
        if patient is None:
            raise SandboxError("no such patient")
        if patient.lang != lang:
            await ps.set_language(self.bot.rt, patient, lang)
        self.clients[user_id] = client_language(lang)

    async def set_staff_language(self, telegram_id: int, lang: str) -> None:
        """A staff member's language, as `diarybot staff add` would change it (audited)."""
        now = self.now
        async with self.bot.rt.db.transaction() as conn:
            old = await repo.staff_by_id(conn, telegram_id)
            if old is None:
                raise SandboxError("no such staff member")
            if old.lang != lang:
                await repo.set_staff_lang(conn, telegram_id, lang)
                await audit.record(
                    conn,
                    now,
                    "sandbox",
                    "staff_language",
                    entity=f"staff:{telegram_id}",
                    old=old.lang,
                    new=lang,
                )
        self.clients[telegram_id] = client_language(lang)
