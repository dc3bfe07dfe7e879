"""SMS providers behind one small interface, chosen by `DIARYBOT_SMS`.

    DIARYBOT_SMS=aliyun                       Alibaba Cloud SMS (SendSms, signature v3 or v1)
    DIARYBOT_SMS=tencent                      Tencent Cloud SMS (SendSms, TC3-HMAC-SHA256)
    DIARYBOT_SMS=webhook:https://gw.example/  POST {"to", "text"} as JSON to the URL
    DIARYBOT_SMS=log                          development: logged (masked number), never sent

`aliyun:URL` / `tencent:URL` send to another endpoint (a proxy, or a loopback server in
tests). Credentials come from the environment and are never logged:
ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET (and ALIYUN_SMS_SIGNATURE: v3,
ACS3-HMAC-SHA256, the default, or v1, HMAC-SHA1);
TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY / TENCENTCLOUD_SMS_SDK_APP_ID.
`DIARYBOT_SMS_RATE` (messages per second, default 10) is the provider's rate limit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bot.channels.sms.base import SmsProvider
from bot.domain.sms_templates import SmsTemplates


class SmsConfigurationError(ValueError):
    """DIARYBOT_SMS or a credential is missing or wrong (says which variable, never its value)."""


def _need(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SmsConfigurationError(f"{name} is not set (needed by DIARYBOT_SMS)")
    return value


def provider_from_env(
    env: Mapping[str, str] | None = None, templates: SmsTemplates | None = None
) -> SmsProvider | None:
    """The provider DIARYBOT_SMS names, or None when SMS is not configured."""
    env = os.environ if env is None else env
    spec = env.get("DIARYBOT_SMS", "").strip()
    if not spec:
        return None
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name == "log":
        from bot.channels.sms.log import LogSms

        return LogSms()
    if name == "webhook":
        from bot.channels.sms.webhook import WebhookSms

        if not arg.startswith(("http://", "https://")):
            raise SmsConfigurationError("DIARYBOT_SMS=webhook:URL needs an http(s) URL")
        return WebhookSms(arg, token=env.get("DIARYBOT_SMS_WEBHOOK_TOKEN") or None)
    if name in ("aliyun", "tencent") and templates is None:
        raise SmsConfigurationError(f"DIARYBOT_SMS={name} needs an [sms] table in the study file")
    if name == "aliyun":
        from bot.channels.sms.aliyun import ENDPOINT, AliyunSms

        assert templates is not None
        signature = env.get("ALIYUN_SMS_SIGNATURE", "").strip().lower() or "v3"
        if signature not in ("v1", "v3"):
            raise SmsConfigurationError(
                f"ALIYUN_SMS_SIGNATURE={signature!r}: expected v3 (ACS3-HMAC-SHA256, the "
                "default) or v1 (HMAC-SHA1 with SignatureVersion 1.0, which Alibaba Cloud's "
                "documents call V2)"
            )
        return AliyunSms(
            _need(env, "ALIBABA_CLOUD_ACCESS_KEY_ID"),
            _need(env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
            templates,
            endpoint=arg or ENDPOINT,
            signature="v1" if signature == "v1" else "v3",
        )
    if name == "tencent":
        from bot.channels.sms.tencent import ENDPOINT as TC_ENDPOINT
        from bot.channels.sms.tencent import TencentSms

        assert templates is not None
        return TencentSms(
            _need(env, "TENCENTCLOUD_SECRET_ID"),
            _need(env, "TENCENTCLOUD_SECRET_KEY"),
            _need(env, "TENCENTCLOUD_SMS_SDK_APP_ID"),
            templates,
            endpoint=arg or TC_ENDPOINT,
            region=env.get("TENCENTCLOUD_REGION", "ap-guangzhou"),
        )
    raise SmsConfigurationError(
        f"DIARYBOT_SMS={name!r}: expected aliyun, tencent, webhook:URL or log"
    )
