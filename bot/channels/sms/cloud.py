"""What the mainland cloud providers (Aliyun, Tencent) share: a key pair, the study's approved
templates, an endpoint and a region, over one HTTP session; the secret is never shown."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.channels.base import HttpRoute
from bot.domain.sms_templates import SmsTemplates


class CloudSms(HttpRoute):
    name: str

    def __init__(
        self,
        key_id: str,
        secret: str,
        templates: SmsTemplates,
        *,
        endpoint: str,
        region: str,
        timeout: float = 15.0,
    ) -> None:
        super().__init__(timeout)
        self._key_id = key_id
        self._secret = secret
        self.templates = templates
        self.endpoint = endpoint
        self.region = region

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return f"{type(self).__name__}(endpoint={self.endpoint!r})"

    @property
    def host(self) -> str:
        """The endpoint's host[:port], as signed and sent in the Host header."""
        return urlsplit(self.endpoint).netloc
