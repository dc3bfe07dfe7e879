"""What every SMS provider shares: the message, the provider protocol, the template lookup.

Below both the package (`provider_from_env` in bot/channels/sms/__init__.py, which picks a
provider) and the providers themselves (aliyun, tencent, webhook, log), so neither imports the
other's side (docs/architecture.md, "No import circles").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.channels.base import Rejected
from bot.domain.sms_templates import SmsTemplates


@dataclass(frozen=True)
class SmsMessage:
    """One SMS: the full text (free-text gateways) and the template it fills (mainland ones)."""

    to: str  # E.164, e.g. +8613812345678
    text: str
    purpose: str | None = None  # a key of bot.domain.sms_templates.PURPOSES
    lang: str = "zh_Hans"
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, to: str, payload: Mapping[str, Any]) -> SmsMessage:
        return cls(
            to=to,
            text=str(payload.get("text", "")),
            purpose=payload.get("purpose"),
            lang=str(payload.get("lang") or "zh_Hans"),
            params={str(k): str(v) for k, v in (payload.get("params") or {}).items()},
        )


class SmsProvider(Protocol):
    name: str

    async def send(self, msg: SmsMessage) -> str | None:
        """Send; the provider's message id. Raises base.Transient or base.Rejected."""
        ...

    async def close(self) -> None: ...


def template_values(templates: SmsTemplates, msg: SmsMessage) -> tuple[str, list[tuple[str, str]]]:
    """(template code, [(parameter, value)] in the template's order) for a mainland provider."""
    if msg.purpose is None:
        raise Rejected("a template provider cannot send a free-text SMS")
    tpl = templates.get(msg.purpose, msg.lang)
    if tpl is None:
        raise Rejected(f"no [sms] template for {msg.purpose} in {msg.lang}")
    return tpl.code, [(p, msg.params.get(p, "")) for p in tpl.params]
