"""A generic SMS gateway: POST {"to": "+86…", "text": "…"} as JSON; any 2xx means accepted.

For gateways that take free text (and for tests). `DIARYBOT_SMS_WEBHOOK_TOKEN`, when set, is
sent as `Authorization: Bearer …`.
"""

from __future__ import annotations

import json

from bot.channels.base import HttpRoute
from bot.channels.sms.base import SmsMessage


class WebhookSms(HttpRoute):
    name = "webhook"

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 15.0) -> None:
        super().__init__(timeout)
        self.url = url
        self._token = token

    async def send(self, msg: SmsMessage) -> str | None:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = json.dumps({"to": msg.to, "text": msg.text}, ensure_ascii=False).encode()
        answer = await self.request("POST", self.url, body=body, headers=headers)
        if isinstance(answer, dict) and answer.get("id") is not None:
            return str(answer["id"])
        return None
