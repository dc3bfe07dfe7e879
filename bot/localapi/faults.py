"""Fault injection and flood-limit accounting for the local Bot API.

The bot must survive what Telegram really does under load or trouble: 429 with
``retry_after``, 5xx from its front ends, connections that die mid-request, slow answers and
patients who block the bot. :class:`Faults` holds the switches a test flips;
:class:`FaultEngine` decides, per call, which (if any) fault happens — seeded, so a failing run
can be replayed.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

#: Methods faults apply to unless a test says otherwise: everything that delivers something
#: to a patient. Never getUpdates/getMe — breaking those only tests PTB's own retry loop.
DEFAULT_FAULTY_METHODS: frozenset[str] = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "sendDocument",
        "sendPhoto",
        "answerCallbackQuery",
    }
)


@dataclass
class Faults:
    """Mutable fault switches; everything defaults to *off* (a perfectly healthy Telegram)."""

    rate_limit_per_second: float | None = None
    """Accepted sends per rolling second across all chats; beyond it: 429."""
    per_chat_per_second: float | None = None
    """Accepted sends per rolling second into one private chat (positive id)."""
    group_per_minute: int | None = None
    """Accepted sends per rolling minute into one group (negative id)."""
    retry_after_seconds: int = 1
    """The ``parameters.retry_after`` value of every 429 answer."""
    error_5xx_fraction: float = 0.0
    """Share of calls answered ``502 Bad Gateway``."""
    drop_fraction: float = 0.0
    """Share of calls whose connection is closed without any answer."""
    slow_seconds: float = 0.0
    """Delay added before each answer."""
    forbidden_chats: set[int] = field(default_factory=set)
    """Chats whose user blocked the bot: sends answer 403."""
    apply_to: set[str] = field(default_factory=lambda: set(DEFAULT_FAULTY_METHODS))
    """Bot API method names the faults above apply to."""
    fail_next: dict[str, int] = field(default_factory=dict)
    """Method name → how many of its next calls answer ``502 Bad Gateway`` (any method,
    ``getMe``, ``setMyCommands`` and ``deleteWebhook`` included; not limited by ``apply_to``)."""
    reject_token: bool = False
    """Every call answers ``401 Unauthorized``, as Telegram does for a revoked token."""


class FaultKind(Enum):
    """What the HTTP layer must do instead of executing the method."""

    DROP = "drop"
    BAD_GATEWAY = "5xx"
    FORBIDDEN = "403"
    FLOOD = "429"


class _Window:
    """Timestamps of accepted sends (monotonic, ascending) for one key."""

    __slots__ = ("stamps",)

    #: Stamps older than this are forgotten; no limit looks further back.
    HORIZON = 120.0

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def count(self, now: float, window: float) -> int:
        """Sends within the last ``window`` seconds (non-destructive: limits share stamps)."""
        return len(self.stamps) - bisect.bisect_right(self.stamps, now - window)

    def add(self, now: float) -> None:
        self.stamps.append(now)
        cut = bisect.bisect_right(self.stamps, now - self.HORIZON)
        if cut > len(self.stamps) // 2:  # amortised pruning keeps long benchmarks O(1)
            del self.stamps[:cut]


def _window_for_rate(per_second: float) -> tuple[float, float]:
    """(window seconds, capacity) for a per-second rate.

    Rates below one per second would never allow a send in a one-second window, so the window
    stretches to ``1/rate`` seconds with capacity one.
    """
    if per_second <= 0:
        return 1.0, 0.0
    if per_second >= 1:
        return 1.0, per_second
    return min(1.0 / per_second, _Window.HORIZON), 1.0


class FaultEngine:
    """Decides the fate of one Bot API call and keeps the flood-limit books.

    Only *accepted* sends are counted (:meth:`record_accepted`), exactly like Telegram, so a bot
    that backs off correctly after a 429 gets through instead of being locked out forever.
    """

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rng = random.Random(seed)
        self._clock = clock
        self._global = _Window()
        self._per_chat: dict[int, _Window] = {}

    def _draw(self, fraction: float) -> bool:
        # No draw when the switch is off, so turning one fault on does not shift the random
        # sequence of another and seeded runs stay comparable.
        return fraction > 0 and self.rng.random() < fraction

    def check(self, faults: Faults, method: str, chat_id: int | None) -> FaultKind | None:
        """The fault to inject for this call, if any (``None``: execute it normally)."""
        if method not in faults.apply_to:
            return None
        if self._draw(faults.drop_fraction):
            return FaultKind.DROP
        if self._draw(faults.error_5xx_fraction):
            return FaultKind.BAD_GATEWAY
        if chat_id is None:
            return None
        if chat_id in faults.forbidden_chats:
            return FaultKind.FORBIDDEN
        if self._flooded(faults, chat_id):
            return FaultKind.FLOOD
        return None

    def _flooded(self, faults: Faults, chat_id: int) -> bool:
        now = self._clock()
        if faults.rate_limit_per_second is not None:
            window, capacity = _window_for_rate(faults.rate_limit_per_second)
            if self._global.count(now, window) >= capacity:
                return True
        chat_window = self._per_chat.get(chat_id)
        if chat_window is None:
            return False
        if chat_id > 0 and faults.per_chat_per_second is not None:
            window, capacity = _window_for_rate(faults.per_chat_per_second)
            if chat_window.count(now, window) >= capacity:
                return True
        if chat_id < 0 and faults.group_per_minute is not None:
            return chat_window.count(now, 60.0) >= faults.group_per_minute
        return False

    def record_accepted(self, chat_id: int) -> None:
        """Count one send Telegram accepted (call only after the method succeeded)."""
        now = self._clock()
        self._global.add(now)
        self._per_chat.setdefault(chat_id, _Window()).add(now)

    def sends_in_last(self, seconds: float, chat_id: int | None = None) -> int:
        """Accepted sends within the last ``seconds`` (≤ 120), globally or for one chat.

        Handy for benchmarks that assert the bot's own throttling stays under the limit.
        """
        window = self._global if chat_id is None else self._per_chat.get(chat_id)
        if window is None:
            return 0
        return window.count(self._clock(), math.inf if seconds <= 0 else seconds)
