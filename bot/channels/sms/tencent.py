"""Tencent Cloud SMS: `SendSms` (version 2021-01-11) signed with TC3-HMAC-SHA256.

TC3: a canonical request (method, "/", empty query, the content-type and host headers, the
names of the signed headers, SHA-256 of the body) is hashed into the string to sign
(`TC3-HMAC-SHA256`, timestamp, `date/service/tc3_request`, that hash); the signing key is
HMAC-SHA256 chained over the date, the service and "tc3_request", starting from "TC3" + the
SecretKey. tests/test_channels_sms.py checks this against Tencent Cloud's published example.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

from bot.channels.base import Rejected, Transient
from bot.channels.sms.base import SmsMessage, template_values
from bot.channels.sms.cloud import CloudSms
from bot.domain.sms_templates import SmsTemplates

ENDPOINT = "https://sms.tencentcloudapi.com/"
SERVICE = "sms"
VERSION = "2021-01-11"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"

# Per-number refusals that will never go through; anything else is retried.
REJECTED = (
    "InvalidParameterValue.IncorrectPhoneNumber",
    "InvalidParameterValue.TemplateParameterFormatError",
    "InvalidParameterValue.TemplateParameterLengthLimit",
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
    "FailedOperation.PhoneNumberInBlacklist",
    "FailedOperation.ContainSensitiveWord",
    "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def canonical_request(host: str, payload: bytes, content_type: str = CONTENT_TYPE) -> str:
    return "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )


def authorization(
    secret_id: str,
    secret_key: str,
    *,
    service: str,
    host: str,
    payload: bytes,
    timestamp: int,
    content_type: str = CONTENT_TYPE,
) -> str:
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    hashed = hashlib.sha256(canonical_request(host, payload, content_type).encode()).hexdigest()
    to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{hashed}"
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders=content-type;host, "
        f"Signature={signature}"
    )


class TencentSms(CloudSms):
    name = "tencent"

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        templates: SmsTemplates,
        *,
        endpoint: str = ENDPOINT,
        region: str = "ap-guangzhou",
        timeout: float = 15.0,
    ) -> None:
        super().__init__(
            secret_id, secret_key, templates, endpoint=endpoint, region=region, timeout=timeout
        )
        self.sdk_app_id = sdk_app_id

    def request_parts(self, msg: SmsMessage, timestamp: int) -> tuple[bytes, dict[str, str]]:
        code, values = template_values(self.templates, msg)
        body = json.dumps(
            {
                "PhoneNumberSet": [msg.to],
                "SmsSdkAppId": self.sdk_app_id,
                "SignName": self.templates.sign_name,
                "TemplateId": code,
                "TemplateParamSet": [v for _, v in values],
            },
            ensure_ascii=False,
        ).encode()
        host = self.host
        headers = {
            "Authorization": authorization(
                self._key_id,
                self._secret,
                service=SERVICE,
                host=host,
                payload=body,
                timestamp=timestamp,
            ),
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": "SendSms",
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.region,
        }
        return body, headers

    async def send(self, msg: SmsMessage) -> str | None:
        body, headers = self.request_parts(msg, int(time.time()))
        answer = await self.request("POST", self.endpoint, body=body, headers=headers)
        response = answer.get("Response") if isinstance(answer, dict) else None
        if not isinstance(response, dict):
            raise Transient("Tencent SendSms: no JSON answer")
        error = response.get("Error")
        if isinstance(error, dict):
            code = str(error.get("Code", ""))
            if code in REJECTED:
                raise Rejected(f"Tencent SendSms refused: {code}")
            raise Transient(f"Tencent SendSms: {code or 'error'}")
        statuses = response.get("SendStatusSet") or []
        status = statuses[0] if statuses and isinstance(statuses[0], dict) else {}
        code = str(status.get("Code", ""))
        if code == "Ok":
            return str(status.get("SerialNo") or "") or None
        if code in REJECTED:
            raise Rejected(f"Tencent SendSms refused: {code}")
        raise Transient(f"Tencent SendSms: {code or 'no status'}")
