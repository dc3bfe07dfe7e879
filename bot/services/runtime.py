"""What every service needs, built once in `bot.app` and passed around explicitly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.domain.study import Study
from storage.db import Database


@dataclass
class Runtime:
    db: Database
    study: Study
    clock: Clock
    bot_username: str | None = None
    # DIARYBOT_PUBLIC_URL: where patients open the web diary (personal links PUBLIC_URL/p/…).
    public_url: str | None = None
    # Set by the application: wakes the outbox sender / the scheduler after a commit.
    wake_sender: Callable[[], None] = field(default=lambda: None)
    wake_scheduler: Callable[[], Awaitable[None]] | None = None

    def now(self) -> datetime:
        return self.clock.now()

    def local_today(self, tz: str) -> date:
        return self.now().astimezone(ZoneInfo(tz)).date()

    async def poke_scheduler(self) -> None:
        if self.wake_scheduler is not None:
            await self.wake_scheduler()
