"""Development: SMS are kept in memory and logged by masked number and length, never sent."""

from __future__ import annotations

import logging

from bot.channels.base import mask_phone
from bot.channels.sms.base import SmsMessage

log = logging.getLogger(__name__)


class LogSms:
    name = "log"

    def __init__(self) -> None:
        self.sent: list[SmsMessage] = []

    async def send(self, msg: SmsMessage) -> str | None:
        self.sent.append(msg)
        log.info(
            "SMS (log only) to %s: %s, %d characters",
            mask_phone(msg.to),
            msg.purpose,
            len(msg.text),
        )
        return f"log-{len(self.sent)}"

    async def close(self) -> None:
        return None
