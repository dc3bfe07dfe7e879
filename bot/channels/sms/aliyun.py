"""Alibaba Cloud SMS: `SendSms` (dysmsapi, version 2017-05-25), signed with v3 or v1.

Signature v3, ACS3-HMAC-SHA256 (the default; Alibaba Cloud recommends it and its SDKs use it):
the parameters go in the query of a POST to "/" with an empty body, and the request carries
`x-acs-action`, `x-acs-version`, `x-acs-date`, `x-acs-signature-nonce` and
`x-acs-content-sha256` (hex SHA-256 of the body). The canonical request is
method \n canonical URI \n canonical query \n canonical headers \n signed headers \n hashed
body, where the canonical query is the v1 one below (sorted, RFC 3986), the canonical headers
are `host`, `content-type` and every `x-acs-*` header as `name:trimmed value\n` sorted by
lower-case name, and the signed headers are their names joined with ";". The string to sign is
"ACS3-HMAC-SHA256\n" + hex SHA-256 of the canonical request; the signature is the hex
HMAC-SHA256 of it keyed with the AccessKey secret, sent as
`Authorization: ACS3-HMAC-SHA256 Credential=<key id>,SignedHeaders=<names>,Signature=<hex>`.

Signature v1 (HMAC-SHA1, `SignatureVersion=1.0`; Alibaba's newer documents call this scheme
"V2"): the parameters sorted by name, each name and value percent-encoded (RFC 3986: only
A–Z a–z 0–9 - _ . ~ left as they are), joined with & and =; the string to sign is
`METHOD&%2F&` + that string percent-encoded again; the key is the AccessKey secret plus "&";
the Base64 of the HMAC is the `Signature` parameter.

tests/test_channels_sms.py checks both against the worked examples in Alibaba Cloud's
signature documentation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from bot.channels.base import Rejected, Transient
from bot.channels.sms.base import SmsMessage, template_values
from bot.channels.sms.cloud import CloudSms
from bot.domain.sms_templates import SmsTemplates

ENDPOINT = "https://dysmsapi.aliyuncs.com/"
ACTION = "SendSms"
VERSION = "2017-05-25"
ACS3 = "ACS3-HMAC-SHA256"
FORM = "application/x-www-form-urlencoded"
Signature = Literal["v1", "v3"]

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


# ----------------------------------------------------------------------------- signature v3


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_uri(path: str) -> str:
    """The URL's path, each segment RFC 3986-encoded ("/" for RPC APIs such as SendSms)."""
    return quote(path or "/", safe="/-_.~")


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(canonical headers, signed headers): host, content-type and every x-acs-* header."""
    signed = sorted(
        (name.lower(), value.strip())
        for name, value in headers.items()
        if name.lower() in ("host", "content-type") or name.lower().startswith("x-acs-")
    )
    return "".join(f"{n}:{v}\n" for n, v in signed), ";".join(n for n, _ in signed)


def v3_canonical_request(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> str:
    """`headers` must already hold x-acs-content-sha256, the hash of the body."""
    lines, signed = canonical_headers(headers)
    hashed = {k.lower(): v for k, v in headers.items()}["x-acs-content-sha256"].strip()
    return "\n".join([method, canonical_uri(path), canonical_query(query), lines, signed, hashed])


def v3_authorization(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> str:
    canonical = v3_canonical_request(method, path, query, headers)
    to_sign = f"{ACS3}\n{sha256_hex(canonical.encode())}"
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    _, signed = canonical_headers(headers)
    return f"{ACS3} Credential={key_id},SignedHeaders={signed},Signature={signature}"


def phone_number(e164: str) -> str:
    """Aliyun's form: mainland numbers without +86; others as country code + number."""
    digits = e164.lstrip("+")
    return digits[2:] if e164.startswith("+86") else digits


class AliyunSms(CloudSms):
    """SendSms signed with `signature` "v3" (ACS3-HMAC-SHA256, the default) or "v1"."""

    name = "aliyun"

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        templates: SmsTemplates,
        *,
        endpoint: str = ENDPOINT,
        region: str = "cn-hangzhou",
        signature: Signature = "v3",
        timeout: float = 15.0,
    ) -> None:
        super().__init__(
            access_key_id,
            access_key_secret,
            templates,
            endpoint=endpoint,
            region=region,
            timeout=timeout,
        )
        self.signature = signature

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return f"AliyunSms(endpoint={self.endpoint!r}, signature={self.signature!r})"

    def template_params(self, msg: SmsMessage) -> dict[str, str]:
        """SendSms's own parameters: the number, the signature name and the filled template."""
        code, values = template_values(self.templates, msg)
        return {
            "PhoneNumbers": phone_number(msg.to),
            "SignName": self.templates.sign_name,
            "TemplateCode": code,
            "TemplateParam": json.dumps(dict(values), ensure_ascii=False),
        }

    def params(self, msg: SmsMessage, *, now: datetime, nonce: str) -> dict[str, str]:
        """Signature v1: SendSms's parameters and the common ones, all in the query."""
        return {
            "AccessKeyId": self._key_id,
            "Action": ACTION,
            "Format": "JSON",
            "RegionId": self.region,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce,
            "SignatureVersion": "1.0",
            "Timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": VERSION,
            **self.template_params(msg),
        }

    def v3_request(
        self, msg: SmsMessage, *, now: datetime, nonce: str
    ) -> tuple[str, dict[str, str]]:
        """Signature v3: (URL with SendSms's parameters in the query, signed headers)."""
        query = self.template_params(msg)
        headers = {
            "host": self.host,
            "x-acs-action": ACTION,
            "x-acs-version": VERSION,
            "x-acs-date": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x-acs-signature-nonce": nonce,
            "x-acs-content-sha256": sha256_hex(b""),
            # Signed, as every content-type sent must be (aiohttp would add its own otherwise).
            "content-type": FORM,
            "accept": "application/json",
        }
        path = urlsplit(self.endpoint).path or "/"
        headers["Authorization"] = v3_authorization(
            self._key_id, self._secret, "POST", path, query, headers
        )
        return f"{self.endpoint}?{canonical_query(query)}", headers

    async def send(self, msg: SmsMessage) -> str | None:
        now, nonce = datetime.now(UTC), str(uuid.uuid4())
        if self.signature == "v3":
            url, headers = self.v3_request(msg, now=now, nonce=nonce)
            answer = await self.request("POST", url, headers=headers, judge_4xx=True)
        else:
            params = self.params(msg, now=now, nonce=nonce)
            signed = percent_encode(sign("GET", params, self._secret))
            answer = await self.request(
                "GET",
                f"{self.endpoint}?{canonical_query(params)}&Signature={signed}",
                judge_4xx=True,
            )
        return outcome(answer)


def outcome(answer: Any) -> str | None:
    """SendSms's answer (the same for both signatures): the BizId, or why it did not go. The
    gateway's own refusals come as HTTP 4xx with a Code too (SignatureDoesNotMatch,
    InvalidAccessKeyId.NotFound, Throttling.User): not in REJECTED, so they are retried."""
    if not isinstance(answer, dict):
        raise Transient("Aliyun SendSms: no JSON answer")
    code = str(answer.get("Code", ""))
    if code == "OK":
        return str(answer.get("BizId") or "") or None
    if code in REJECTED:
        raise Rejected(f"Aliyun SendSms refused: {code}")
    raise Transient(f"Aliyun SendSms: {code or 'no code'}")
