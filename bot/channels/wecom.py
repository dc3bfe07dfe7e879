"""WeCom (企业微信) group robot: POST {"msgtype": "markdown", "markdown": {"content": …}}.

The robot answers HTTP 200 with {"errcode": 0} when it accepted the message. errcode 45009
(over the robot's limit of 20 messages a minute) and other faults are retried; an invalid
webhook key (93000) too, since it is an operator's fix and nothing must be dropped meanwhile.
"""

from __future__ import annotations

import json

from bot.channels.base import Envelope, HttpRoute, Rejected, Transient

MAX_BYTES = 4096  # the robot's limit for a markdown message's content


def clip(markdown: str) -> str:
    data = markdown.encode()
    if len(data) <= MAX_BYTES:
        return markdown
    return data[: MAX_BYTES - 3].decode(errors="ignore") + "…"


class WeComRoute(HttpRoute):
    channel = "wecom"

    def __init__(self, *, rate: float = 20 / 60, burst: int = 5, timeout: float = 15.0) -> None:
        super().__init__(timeout)
        self.rate = rate
        self.burst = burst

    async def send(self, env: Envelope) -> None:
        body = json.dumps(
            {"msgtype": "markdown", "markdown": {"content": clip(str(env.payload["markdown"]))}},
            ensure_ascii=False,
        ).encode()
        answer = await self.request(
            "POST",
            env.destination,
            body=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        if not isinstance(answer, dict):
            raise Transient("WeCom robot: no JSON answer")
        code = answer.get("errcode")
        if code == 0:
            return
        if code == 40058:  # the content itself is refused (too long / invalid)
            raise Rejected(f"WeCom robot refused the message: errcode {code}")
        raise Transient(f"WeCom robot: errcode {code}")
