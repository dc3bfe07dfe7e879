"""The alarm clock: APScheduler wakes us; the occurrences table says what is due.

One `tick()` does everything that is due at `clock.now()`: windows that closed become missed,
windows that opened get their prompt, unanswered ones their reminder. Each change and its
outgoing message are one transaction, so after a crash or restart a prompt is neither lost nor
repeated. Then we ask the table for the next moment anything changes and set one APScheduler
date job for it — no job per occurrence, no pickled jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from bot.channels.patients import notify_patient, route_for_patient
from bot.i18n import t
from bot.messenger import Priority
from bot.services.diary import close_unsubmitted
from bot.services.runtime import Runtime
from conversations import diary_view
from storage import audit, repo
from storage import channels as channel_store

log = logging.getLogger(__name__)

TickHook = Callable[[datetime], Awaitable[None]]
SAFETY_NET = timedelta(minutes=5)
RETRY_AFTER_FAILURE = timedelta(seconds=30)


class DiaryScheduler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.aps: AsyncIOScheduler | None = None
        self._lock = asyncio.Lock()
        # Other periodic duties (visit reminders, digests, alert re-sends) plug in here.
        self.hooks: list[TickHook] = []
        self.wake_hooks: list[Callable[[datetime], Awaitable[datetime | None]]] = []
        self.ticks = 0

    # ------------------------------------------------------------------ APScheduler
    def start(self) -> None:
        """Must run inside the event loop (AsyncIOScheduler.start needs a running loop)."""
        self.aps = AsyncIOScheduler(
            timezone="UTC",
            job_defaults={
                # Run a late wake-up however late (the default 1 s grace silently drops it) and
                # merge missed runs into one: a tick catches up on everything due anyway.
                "misfire_grace_time": None,
                "coalesce": True,
                "max_instances": 1,
            },
        )
        self.aps.start()

    def shutdown(self) -> None:
        if self.aps is not None and self.aps.running:
            self.aps.shutdown(wait=False)
        self.aps = None

    def _arm(self, when: datetime) -> None:
        """One job: the next moment something changes (at most SAFETY_NET away)."""
        if self.aps is None:
            return
        if self.rt.clock.is_fake:
            return  # the fake clock calls tick() itself when it moves
        self.aps.add_job(self.tick, DateTrigger(run_date=when), id="wake", replace_existing=True)

    # ------------------------------------------------------------------ the tick
    async def tick(self) -> None:
        async with self._lock:
            now = self.rt.now()
            self.ticks += 1
            failed = True
            try:
                await self._close_windows(now)
                await self._send_prompts(now)
                await self._send_reminders(now)
                for hook in self.hooks:
                    await hook(now)
                failed = False
            finally:
                self.rt.wake_sender()
                # Always arm the next wake, or the scheduler would stop for good: a tick that
                # failed (disk full, database locked) is tried again soon.
                try:
                    when = await self.next_wake(now)
                except Exception:
                    log.exception("scheduler: could not compute the next wake")
                    when = now + RETRY_AFTER_FAILURE
                if failed:
                    when = min(when, now + RETRY_AFTER_FAILURE)
                self._arm(when)

    async def next_wake(self, now: datetime) -> datetime:
        """Earliest future change in the occurrences table (or the safety net)."""
        change = await self.next_change(now)
        candidates = [now + SAFETY_NET] + ([change] if change is not None else [])
        return max(min(candidates), now + timedelta(seconds=1))

    async def next_change(self, now: datetime) -> datetime | None:
        """Earliest future moment anything is due (occurrences or a wake hook), if any.

        The sandbox's time travel steps through these moments so every prompt, reminder and
        re-alert happens at its own time instead of all at once at the end of a jump.
        """
        change = await repo.next_change(self.rt.db.conn, now)
        candidates: list[datetime] = [change] if change is not None else []
        for hook in self.wake_hooks:
            when = await hook(now)
            if when is not None:
                candidates.append(when)
        return min(candidates) if candidates else None

    async def _close_windows(self, now: datetime) -> None:
        async with self.rt.db.transaction() as conn:
            for r in await repo.windows_to_close(conn, now):
                await repo.mark_missed(conn, r["id"], r["pid"])
                await audit.record(
                    conn,
                    now,
                    "system",
                    "diary_missed",
                    subject=r["subject"],
                    entity=r["key"],
                    old=r["status"],
                    new="missed",
                )
                if r["answered"]:  # answers given without Submit stay as data (incomplete)
                    await close_unsubmitted(conn, self.rt.study, r["id"], r["subject"], now)

    async def _send_prompts(self, now: datetime) -> None:
        await self._notify(now, "scheduled", "opens_at", "prompted", "prompted_at", False)

    async def _send_reminders(self, now: datetime) -> None:
        await self._notify(now, "prompted", "remind_at", "reminded", "reminded_at", True)

    async def _notify(
        self,
        now: datetime,
        status: str,
        due_col: str,
        new_status: str,
        stamp_col: str,
        reminder: bool,
    ) -> None:
        async with self.rt.db.transaction() as conn:
            # A prompt that went out after the reminder time (late link, catch-up after
            # downtime) is its own reminder: no second message in the same breath.
            rows = await repo.due_to_notify(conn, status, due_col, now)
            for r in rows:
                occ = repo.OccRow.from_row(r)
                patient = await repo.patient_by_id(conn, r["pid"])
                row = await channel_store.patient_row(conn, r["pid"])
                if patient is None or route_for_patient(row) is None:
                    continue  # no chat yet, blocked the bot, or a web patient without a phone
                text, buttons = diary_view.prompt(t(patient.lang), occ, reminder=reminder)
                await notify_patient(  # the chat, or an SMS for a web-diary patient
                    conn,
                    now,
                    self.rt.study,
                    row,
                    "reminder" if reminder else "prompt",
                    telegram_text=text,
                    buttons=buttons,
                    priority=Priority.PROMPT,
                    ref=f"{new_status}:{occ.id}",
                    base_url=self.rt.public_url,
                )
                await repo.mark_notified(conn, occ.id, new_status, stamp_col, now)
                await audit.record(
                    conn,
                    now,
                    "system",
                    f"diary_{new_status}",
                    subject=patient.subject,
                    entity=occ.key,
                    old=status,
                    new=new_status,
                )
