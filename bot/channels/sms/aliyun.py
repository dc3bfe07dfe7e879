"""Alibaba Cloud SMS: `SendSms` (dysmsapi, version 2017-05-25) with RPC signature v1.

Signature v1 (HMAC-SHA1): the parameters sorted by name, each name and value percent-encoded
(RFC 3986: only A–Z a–z 0–9 - _ . ~ left as they are), joined with & and =; the string to sign
is `METHOD&%2F&` + that string percent-encoded again; the key is the AccessKey secret plus
"&"; the Base64 of the HMAC is the `Signature` parameter. tests/test_channels_sms.py checks
this against the worked example in Alibaba Cloud's signature documentation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from bot.channels.base import HttpRoute, Rejected, Transient
from bot.channels.sms.base import SmsMessage, template_values
from bot.domain.sms_templates import SmsTemplates

ENDPOINT = "https://dysmsapi.aliyuncs.com/"
VERSION = "2017-05-25"

# Codes that refuse this one message for good; every other failure is retried (throttling,
# a provider fault, a key or signature problem an operator must fix: nothing is dropped).
REJECTED = (
    "isv.MOBILE_NUMBER_ILLEGAL",
    "isv.MOBILE_COUNT_OVER_LIMIT",
    "isv.INVALID_PARAMETERS",
    "isv.TEMPLATE_PARAMS_ILLEGAL",
    "isv.TEMPLATE_MISSING_PARAMETERS",
    "isv.PARAM_LENGTH_LIMIT",
    "isv.PARAM_NOT_SUPPORT_URL",
    "isv.BLACK_KEY_CONTROL_LIMIT",
    "isv.INVALID_JSON_PARAM",
)


def percent_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    digest = hmac.new(
        (secret + "&").encode(), string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def phone_number(e164: str) -> str:
    """Aliyun's form: mainland numbers without +86; others as country code + number."""
    digits = e164.lstrip("+")
    return digits[2:] if e164.startswith("+86") else digits


class AliyunSms(HttpRoute):
    name = "aliyun"

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        templates: SmsTemplates,
        *,
        endpoint: str = ENDPOINT,
        region: str = "cn-hangzhou",
        timeout: float = 15.0,
    ) -> None:
        super().__init__(timeout)
        self._key_id = access_key_id
        self._secret = access_key_secret
        self.templates = templates
        self.endpoint = endpoint
        self.region = region

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return f"AliyunSms(endpoint={self.endpoint!r})"

    def params(self, msg: SmsMessage, *, now: datetime, nonce: str) -> dict[str, str]:
        code, values = template_values(self.templates, msg)
        return {
            "AccessKeyId": self._key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": phone_number(msg.to),
            "RegionId": self.region,
            "SignName": self.templates.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce,
            "SignatureVersion": "1.0",
            "TemplateCode": code,
            "TemplateParam": json.dumps(dict(values), ensure_ascii=False),
            "Timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": VERSION,
        }

    async def send(self, msg: SmsMessage) -> str | None:
        params = self.params(msg, now=datetime.now(UTC), nonce=str(uuid.uuid4()))
        query = (
            canonical_query(params)
            + "&Signature="
            + percent_encode(sign("GET", params, self._secret))
        )
        answer = await self.request("GET", f"{self.endpoint}?{query}")
        if not isinstance(answer, dict):
            raise Transient("Aliyun SendSms: no JSON answer")
        code = str(answer.get("Code", ""))
        if code == "OK":
            return str(answer.get("BizId") or "") or None
        if code in REJECTED:
            raise Rejected(f"Aliyun SendSms refused: {code}")
        raise Transient(f"Aliyun SendSms: {code or 'no code'}")
