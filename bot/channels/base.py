"""What every non-Telegram route shares: the row it sends, its two kinds of failure, HTTP help.

A route (an SMS provider, the WeCom robot, SMTP) sends one outbox row at a time and says how it
went: returning means the provider accepted the message (the row is then marked sent);
`Transient` keeps the row queued for a later retry (network, 5xx, throttling, a provider that is
down or misconfigured: nothing is lost while an operator fixes it); `Rejected` fails the row for
good (this one message can never go: an invalid number, a template parameter refused).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

CHANNELS = ("sms", "wecom", "email")


class Transient(Exception):
    """Try again later; the row stays queued."""


class Rejected(Exception):
    """This message can never be delivered; the row fails (logged)."""


@dataclass(frozen=True)
class Envelope:
    """One queued non-Telegram outbox row."""

    id: int
    channel: str
    priority: int
    destination: str
    payload: dict[str, Any]
    attempts: int


class Route(Protocol):
    """One way out. `rate` messages per second at most (`burst` at once), the provider's limit."""

    channel: str
    rate: float
    burst: int

    async def send(self, env: Envelope) -> None: ...

    async def close(self) -> None: ...


class HttpRoute:
    """A route that talks HTTP: one aiohttp session, bounded timeouts, status → failure kind."""

    def __init__(self, timeout: float = 15.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 10.0))
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        judge_4xx: bool = False,
    ) -> Any:
        """The answer's JSON (or None). Network trouble, 429 and 5xx: Transient; other 4xx:
        Rejected, or with `judge_4xx` the answer's JSON, for a provider whose 4xx answers say
        why in the body. Never puts the URL's query (it may hold keys) in an error."""
        where = url.split("?", 1)[0]
        try:
            async with self.session().request(method, url, data=body, headers=headers) as resp:
                text = await resp.text()
                if resp.status == 429 or resp.status >= 500:
                    raise Transient(f"HTTP {resp.status} from {where}")
                if resp.status >= 400 and not judge_4xx:
                    raise Rejected(f"HTTP {resp.status} from {where}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Transient(f"{type(exc).__name__} talking to {where}") from exc
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return None


def mask_phone(phone: str) -> str:
    """+8613812345678 → +86138****5678: enough to tell numbers apart in a log line."""
    if len(phone) <= 7:
        return "****"
    return phone[:-8] + "****" + phone[-4:] if len(phone) > 8 else phone[:3] + "****"
