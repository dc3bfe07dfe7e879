"""Where features plug in: one typed `Hooks` per bot, instead of string keys in `bot_data`.

Each feature's `install(bot)` (bot/<feature>/feature.py) receives a `FeatureHost` (in practice
`bot.app.DiaryBot`) and adds what it brings to `bot.hooks`: commands, button areas, the staff
text handler, patient text hooks, the reachable/unreachable hooks, and the feature objects
other code reads (the health log, the backup schedule …). Like an aiogram `Router` per feature,
but explicit: `bot/features.py` lists the features in the order they are installed.

PTB handlers reach the same object through `hooks_of(context)`; code holding the Application (the
poller, `DiaryApplication`) through `app_hooks(app)`. Both read the one `bot_data` entry that
`attach` sets.

This module sits below the features and `bot.app`: it imports neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import aiosqlite
from telegram import Update
from telegram.ext import Application, ContextTypes

from bot.delivery.health import HealthLog
from bot.delivery.inbound import FloodGuard, InboundLimits
from bot.delivery.retention import OutboxRetention
from bot.followup.duties import FollowUp
from bot.ops.backups import BackupSchedule
from bot.scheduler import DiaryScheduler
from bot.sender import Sender
from bot.services.diary import DiaryService
from bot.services.runtime import Runtime
from conversations.callbacks import Callback
from storage.repo import Patient

# A /command: `CommandHandler(name, callback)` (PTB wants a coroutine function).
Command = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]
# A button tap in a feature's callback-data area (`area:verb:args`, conversations/callbacks.py).
ButtonHandler = Callable[[Update, ContextTypes.DEFAULT_TYPE, Callback], Awaitable[None]]
# Text typed by a staff member; True when it was taken (else the next handler gets it).
StaffTextHandler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[bool]]
# Text typed by an enrolled patient, before settings and the diary; True when it was taken.
PatientTextHook = Callable[[Update, ContextTypes.DEFAULT_TYPE, Patient, str], Awaitable[bool]]
# A patient's chat became unreachable (403) or reachable again: `(conn, chat_id, now)`, called
# inside the transaction that changed the flag.
ChatHook = Callable[[aiosqlite.Connection, int, datetime], Awaitable[None]]
# Asked by the poller for each update's raw JSON before parsing it: False drops it (the flood
# guard, bot/delivery/inbound.py).
AdmitUpdate = Callable[[dict[str, Any]], Awaitable[bool]]
# Told each successful getUpdates (bot/ops/monitor.py).
PollListener = Callable[[], None]

HOOKS_KEY = "hooks"  # the one bot_data entry


@dataclass
class Hooks:
    """Everything features add to the bot, typed."""

    commands: dict[str, Command] = field(default_factory=dict)
    staff_buttons: dict[str, ButtonHandler] = field(default_factory=dict)
    # Areas whose buttons also work in a group chat (the feature authorizes the tap).
    group_buttons: set[str] = field(default_factory=set)
    staff_text: StaffTextHandler | None = None
    patient_text: list[PatientTextHook] = field(default_factory=list)
    on_unreachable: list[ChatHook] = field(default_factory=list)  # run by DiaryBot._on_forbidden
    on_reachable: list[ChatHook] = field(default_factory=list)  # bot/delivery/reachability.py
    poll_ok: list[PollListener] = field(default_factory=list)
    admit_update: AdmitUpdate | None = None
    # Per-user flood limits for the flood guard (DiaryBot.create's `inbound`; None: defaults).
    inbound_limits: InboundLimits | None = None
    # The feature objects other code reads (None until their feature is installed).
    flood_guard: FloodGuard | None = None
    health: HealthLog | None = None
    retention: OutboxRetention | None = None
    followup: FollowUp | None = None
    backups: BackupSchedule | None = None


class FeatureHost(Protocol):
    """What a feature's `install` may use of the bot (`bot.app.DiaryBot` is one)."""

    @property
    def rt(self) -> Runtime: ...

    @property
    def app(self) -> Application[Any, Any, Any, Any, Any, Any]: ...

    @property
    def sender(self) -> Sender: ...

    @property
    def scheduler(self) -> DiaryScheduler: ...

    @property
    def diary(self) -> DiaryService: ...

    @property
    def hooks(self) -> Hooks: ...


def attach(app: Application[Any, Any, Any, Any, Any, Any], hooks: Hooks) -> None:
    """Make `hooks` what `hooks_of(context)` and `app_hooks(app)` return."""
    app.bot_data[HOOKS_KEY] = hooks


def app_hooks(app: Application[Any, Any, Any, Any, Any, Any]) -> Hooks:
    found = app.bot_data.get(HOOKS_KEY)
    if not isinstance(found, Hooks):
        raise RuntimeError("no Hooks attached to this Application (bot.registry.attach)")
    return found


def hooks_of(context: ContextTypes.DEFAULT_TYPE) -> Hooks:
    """The bot's hooks, from inside a PTB handler."""
    return app_hooks(context.application)
