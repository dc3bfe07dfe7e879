"""The SMS channel as a dispatcher route: an outbox row → SmsMessage → the provider."""

from __future__ import annotations

from bot.channels.base import Envelope
from bot.channels.sms.base import SmsMessage, SmsProvider


class SmsRoute:
    channel = "sms"

    def __init__(self, provider: SmsProvider, *, rate: float = 10.0, burst: int = 10) -> None:
        self.provider = provider
        self.rate = rate
        self.burst = burst

    async def send(self, env: Envelope) -> None:
        await self.provider.send(SmsMessage.from_payload(env.destination, env.payload))

    async def close(self) -> None:
        await self.provider.close()
