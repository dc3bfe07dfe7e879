"""SMS providers: signatures against the providers' published examples, requests against a
loopback server that checks them as the provider would, configuration errors."""

from __future__ import annotations

import hashlib
import logging
import re
import tomllib
from pathlib import Path

import pytest

from bot.channels.base import Rejected, Transient, mask_phone
from bot.channels.sms import SmsConfigurationError, aliyun, provider_from_env, tencent
from bot.channels.sms.aliyun import AliyunSms
from bot.channels.sms.base import SmsMessage
from bot.channels.sms.tencent import TencentSms
from bot.channels.sms.webhook import WebhookSms
from bot.domain.study import Study, StudyError, parse_study
from tests.channels_support import (
    ALIYUN_ID,
    ALIYUN_SECRET,
    TENCENT_APP,
    TENCENT_ID,
    TENCENT_KEY,
    gateway,
)

# --------------------------------------------------------------------------- published examples

# Alibaba Cloud, "RPC signature v1" documentation: DescribeRegions signed with testsecret.
ALIYUN_DOC = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}


def test_aliyun_signature_matches_the_documented_example() -> None:
    assert aliyun.string_to_sign("GET", ALIYUN_DOC) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
        "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
        "%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z"
        "%26Version%3D2014-05-26"
    )
    assert aliyun.sign("GET", ALIYUN_DOC, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_aliyun_percent_encoding_follows_rfc3986() -> None:
    assert aliyun.percent_encode("a b*c~d") == "a%20b%2Ac~d"
    assert aliyun.percent_encode("研") == "%E7%A0%94"


# Tencent Cloud, "Signature v3" documentation: CVM DescribeInstances at 1551113065.
TC_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)


def test_tencent_tc3_matches_the_documented_example() -> None:
    canonical = tencent.canonical_request("cvm.tencentcloudapi.com", TC_PAYLOAD)
    assert canonical.endswith("35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    assert (
        hashlib.sha256(canonical.encode()).hexdigest()
        == "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    auth = tencent.authorization(
        "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
        "Gu5t9xGARNpq86cd98joQYCN3*******",
        service="cvm",
        host="cvm.tencentcloudapi.com",
        payload=TC_PAYLOAD,
        timestamp=1551113065,
    )
    assert auth == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    )


# --------------------------------------------------------------------------- loopback sending


def _prompt(lang: str = "zh_Hans") -> SmsMessage:
    return SmsMessage(
        to="+8613812345678",
        text="今天的日记已开放",
        purpose="prompt",
        lang=lang,
        params={"link": "https://diary.example.cn/"},
    )


async def test_webhook_posts_to_and_text() -> None:
    async with gateway() as gw:
        sms = WebhookSms(gw.url("/sms"))
        try:
            assert await sms.send(_prompt()) == "1"
        finally:
            await sms.close()
    assert gw.got("sms") == [{"to": "+8613812345678", "text": "今天的日记已开放"}]


async def test_aliyun_sendsms_is_signed_and_uses_the_study_template(study: Study) -> None:
    assert study.sms is not None
    async with gateway() as gw:
        sms = AliyunSms(ALIYUN_ID, ALIYUN_SECRET, study.sms, endpoint=gw.url("/aliyun/"))
        try:
            assert await sms.send(_prompt("en")) == "biz-1"
            wrong = AliyunSms(ALIYUN_ID, "not-the-secret", study.sms, endpoint=gw.url("/aliyun/"))
            with pytest.raises(Rejected):  # 400 SignatureDoesNotMatch
                await wrong.send(_prompt())
            await wrong.close()
        finally:
            await sms.close()
    (got,) = gw.got("aliyun")
    assert got["Action"] == "SendSms" and got["Version"] == "2017-05-25"
    assert got["PhoneNumbers"] == "13812345678"  # mainland numbers without +86
    assert got["SignName"] == study.sms.sign_name
    assert got["TemplateCode"] == study.sms.templates["prompt"]["en"].code
    assert got["TemplateParam"] == '{"link": "https://diary.example.cn/"}'
    assert got["AccessKeyId"] == ALIYUN_ID and got["SignatureMethod"] == "HMAC-SHA1"


async def test_tencent_sendsms_is_signed_with_tc3(study: Study) -> None:
    assert study.sms is not None
    async with gateway() as gw:
        sms = TencentSms(
            TENCENT_ID, TENCENT_KEY, TENCENT_APP, study.sms, endpoint=gw.url("/tencent/")
        )
        wrong = TencentSms(
            TENCENT_ID, "wrong-key", TENCENT_APP, study.sms, endpoint=gw.url("/tencent/")
        )
        try:
            assert await sms.send(_prompt()) == "s-1"
            with pytest.raises(Transient, match="AuthFailure"):  # kept queued: an operator's fix
                await wrong.send(_prompt())
        finally:
            await sms.close()
            await wrong.close()
    (got,) = gw.got("tencent")
    assert got["headers"]["X-TC-Action"] == "SendSms"
    assert got["headers"]["X-TC-Version"] == "2021-01-11"
    assert got["body"] == {
        "PhoneNumberSet": ["+8613812345678"],
        "SmsSdkAppId": TENCENT_APP,
        "SignName": study.sms.sign_name,
        "TemplateId": study.sms.templates["prompt"]["zh_Hans"].code,
        "TemplateParamSet": ["https://diary.example.cn/"],
    }


async def test_a_gateway_that_fails_or_is_down_is_a_transient_failure() -> None:
    async with gateway() as gw:
        gw.fail["sms"] = 500
        sms = WebhookSms(gw.url("/sms"))
        with pytest.raises(Transient, match="HTTP 500"):
            await sms.send(_prompt())
    with pytest.raises(Transient):  # the server is gone: connection refused
        await sms.send(_prompt())
    await sms.close()


async def test_a_template_provider_refuses_free_text(study: Study) -> None:
    assert study.sms is not None
    sms = AliyunSms("id", "secret", study.sms, endpoint="http://127.0.0.1:9/")
    with pytest.raises(Rejected, match="free-text"):
        await sms.send(SmsMessage(to="+8613812345678", text="hello"))
    await sms.close()


# --------------------------------------------------------------------------- configuration


def test_provider_from_env(study: Study) -> None:
    assert provider_from_env({}, study.sms) is None
    assert provider_from_env({"DIARYBOT_SMS": "log"}).name == "log"  # type: ignore[union-attr]
    hook = provider_from_env({"DIARYBOT_SMS": "webhook:http://127.0.0.1:1/sms"})
    assert hook is not None and hook.name == "webhook"
    env = {
        "DIARYBOT_SMS": "aliyun",
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "very-secret",
    }
    provider = provider_from_env(env, study.sms)
    assert provider is not None and "very-secret" not in repr(provider)
    with pytest.raises(SmsConfigurationError, match="ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        provider_from_env(
            {"DIARYBOT_SMS": "aliyun", "ALIBABA_CLOUD_ACCESS_KEY_ID": "id"}, study.sms
        )
    with pytest.raises(SmsConfigurationError, match="TENCENTCLOUD_SECRET_ID"):
        provider_from_env({"DIARYBOT_SMS": "tencent"}, study.sms)
    with pytest.raises(SmsConfigurationError, match="expected aliyun"):
        provider_from_env({"DIARYBOT_SMS": "carrier-pigeon"}, study.sms)
    with pytest.raises(SmsConfigurationError, match="URL"):
        provider_from_env({"DIARYBOT_SMS": "webhook:ftp://x"}, study.sms)


async def test_log_provider_never_logs_the_number_or_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = provider_from_env({"DIARYBOT_SMS": "log"})
    assert provider is not None
    with caplog.at_level(logging.INFO):
        await provider.send(_prompt())
    assert "13812345678" not in caplog.text and "日记" not in caplog.text
    assert mask_phone("+8613812345678") in caplog.text


# --------------------------------------------------------------------------- the study's [sms]


def _with_sms(study: Study, sms: object) -> Study:
    raw = tomllib.loads(Path(study.source).read_text(encoding="utf-8"))
    raw["sms"] = sms
    return parse_study(raw)


def test_study_sms_templates_are_validated(study: Study) -> None:
    assert study.sms is not None
    assert study.sms.get("alert", "zh_Hans") is not None
    ok = {"sign_name": "研究", "templates": {"prompt": {
        "zh_Hans": {"code": "1", "params": ["link"]}, "en": {"code": "2"}}}}  # fmt: skip
    parsed = _with_sms(study, ok).sms
    assert parsed is not None and parsed.get("prompt", "en") is not None
    bad = [
        ({"templates": {}}, "sms.sign_name"),
        ({"sign_name": "x", "templates": {"promt": {}}}, "sms.templates.promt: unknown kind"),
        ({"sign_name": "x", "templates": {"prompt": {"zh_Hans": {"code": "1"}}}},
         "sms.templates.prompt.en: missing"),
        ({"sign_name": "x", "templates": {"prompt": {
            "zh_Hans": {"code": "1", "params": ["name"]}, "en": {"code": "2"}}}},
         "sms.templates.prompt.zh_Hans.params: 'name' is not filled here"),
        ({"sign_name": "x", "templatez": {}}, "sms.templatez: unknown key"),
    ]  # fmt: skip
    for sms, message in bad:
        with pytest.raises(StudyError, match=re.escape(message)):
            _with_sms(study, sms)
