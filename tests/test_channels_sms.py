"""SMS providers: signatures against the providers' published examples, requests against a
loopback server that checks them as the provider would, configuration errors."""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.channels.base import Rejected, Transient, mask_phone
from bot.channels.dispatcher import ChannelDispatcher
from bot.channels.outbox import enqueue_sms
from bot.channels.sms import SmsConfigurationError, aliyun, provider_from_env, tencent
from bot.channels.sms.aliyun import AliyunSms, Signature
from bot.channels.sms.base import SmsMessage
from bot.channels.sms.route import SmsRoute
from bot.channels.sms.tencent import TencentSms
from bot.channels.sms.webhook import WebhookSms
from bot.clock import FakeClock
from bot.domain.study import Study, StudyError, parse_study
from bot.messenger import Priority
from storage.db import Database
from tests.channels_support import (
    ALIYUN_ID,
    ALIYUN_SECRET,
    TENCENT_APP,
    TENCENT_ID,
    TENCENT_KEY,
    gateway,
)
from tests.sandbox_support import clean_env, site_study_file

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


# Alibaba Cloud, "Request syntax and signature method V3", section "Signature examples" →
# "Fixed parameter values" (https://www.alibabacloud.com/help/en/sdk/product-overview/
# v3-request-structure-and-signature; Chinese: https://help.aliyun.com/zh/sdk/product-overview/
# v3-request-structure-and-signature): ECS RunInstances signed with YourAccessKeySecret.
ACS3_DOC_HEADERS = {
    "host": "ecs.cn-shanghai.aliyuncs.com",
    "x-acs-action": "RunInstances",
    "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "x-acs-date": "2023-10-26T10:22:32Z",
    "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
    "x-acs-version": "2014-05-26",
}
ACS3_DOC_QUERY = {
    "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
    "RegionId": "cn-shanghai",
}


def test_aliyun_v3_signature_matches_the_documented_example() -> None:
    """Every intermediate value of the documented example, then the final Authorization header
    (the document prints the canonical request, "ACS3-HMAC-SHA256\n7ea06492…", the signature
    06563a9e… and the header). The same example is repeated in Function Compute's "签名机制"
    page (help.aliyun.com/zh/functioncompute/fc/developer-reference/signature-mechanism)."""
    canonical = aliyun.v3_canonical_request("POST", "/", ACS3_DOC_QUERY, ACS3_DOC_HEADERS)
    assert canonical == (
        "POST\n"
        "/\n"
        "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n"
        "host:ecs.cn-shanghai.aliyuncs.com\n"
        "x-acs-action:RunInstances\n"
        "x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-acs-date:2023-10-26T10:22:32Z\n"
        "x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n"
        "x-acs-version:2014-05-26\n"
        "\n"
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert aliyun.sha256_hex(b"") == ACS3_DOC_HEADERS["x-acs-content-sha256"]
    assert (
        aliyun.sha256_hex(canonical.encode())
        == "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    auth = aliyun.v3_authorization(
        "YourAccessKeyId", "YourAccessKeySecret", "POST", "/", ACS3_DOC_QUERY, ACS3_DOC_HEADERS
    )
    assert auth == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,"
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;"
        "x-acs-signature-nonce;x-acs-version,"
        "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )


def test_aliyun_v3_second_documented_example_and_header_rules() -> None:
    """Alibaba's "ROA风格请求体&签名机制" page (help.aliyun.com/zh/model-studio/
    roa-style-request-body-signature-mechanism) shows the same request at 2023-10-26T09:01:01Z
    with nonce d410180a5abf7fe235dd9b74aca91fc0 and Signature=e521358f…64804. Header names are
    signed in lower case with trimmed values; other headers (accept, user-agent) are not signed;
    content-type is."""
    headers = {
        "Host": "ecs.cn-shanghai.aliyuncs.com",
        "X-Acs-Action": "RunInstances",
        "X-Acs-Content-Sha256": ACS3_DOC_HEADERS["x-acs-content-sha256"],
        "X-Acs-Date": " 2023-10-26T09:01:01Z ",
        "X-Acs-Signature-Nonce": "d410180a5abf7fe235dd9b74aca91fc0",
        "X-Acs-Version": "2014-05-26",
        "accept": "application/json",
        "user-agent": "diarybot",
    }
    auth = aliyun.v3_authorization(
        "YourAccessKeyId", "YourAccessKeySecret", "POST", "/", ACS3_DOC_QUERY, headers
    )
    assert auth.endswith(
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;"
        "x-acs-signature-nonce;x-acs-version,"
        "Signature=e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804"
    )
    lines, signed = aliyun.canonical_headers({**headers, "Content-Type": "application/json"})
    assert signed.startswith("content-type;host;") and "content-type:application/json\n" in lines
    assert aliyun.canonical_uri("/") == "/" and aliyun.canonical_uri("") == "/"
    assert aliyun.canonical_uri("/a b/研*") == "/a%20b/%E7%A0%94%2A"


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


@pytest.mark.parametrize("signature", ["v3", "v1"])
async def test_aliyun_sendsms_is_signed_and_uses_the_study_template(
    study: Study, signature: Signature
) -> None:
    assert study.sms is not None
    async with gateway() as gw:
        url = gw.url("/aliyun/")
        sms = AliyunSms(ALIYUN_ID, ALIYUN_SECRET, study.sms, endpoint=url, signature=signature)
        wrong = AliyunSms(ALIYUN_ID, "not-the-secret", study.sms, endpoint=url, signature=signature)
        try:
            assert await sms.send(_prompt("en")) == "biz-1"
            # 400 SignatureDoesNotMatch: kept queued, as an operator must fix the key.
            with pytest.raises(Transient, match="SignatureDoesNotMatch"):
                await wrong.send(_prompt())
        finally:
            await sms.close()
            await wrong.close()
    (got,) = gw.got("aliyun")
    if signature == "v3":
        headers, params = got["headers"], got["query"]
        assert headers["x-acs-action"] == "SendSms" and headers["x-acs-version"] == "2017-05-25"
        assert headers["Authorization"].startswith(f"ACS3-HMAC-SHA256 Credential={ALIYUN_ID},")
        assert got["body"] == b""
        assert set(params) == {"PhoneNumbers", "SignName", "TemplateCode", "TemplateParam"}
        assert ALIYUN_SECRET not in str(got)
    else:
        params = got
        assert params["Action"] == "SendSms" and params["Version"] == "2017-05-25"
        assert params["AccessKeyId"] == ALIYUN_ID and params["SignatureMethod"] == "HMAC-SHA1"
    assert params["PhoneNumbers"] == "13812345678"  # mainland numbers without +86
    assert params["SignName"] == study.sms.sign_name
    assert params["TemplateCode"] == study.sms.templates["prompt"]["en"].code
    assert params["TemplateParam"] == '{"link": "https://diary.example.cn/"}'


@pytest.mark.parametrize("signature", ["v3", "v1"])
async def test_aliyun_business_codes_are_retried_or_refused(
    study: Study, signature: Signature
) -> None:
    """SendSms answers HTTP 200 with the reason in Code: throttling (BUSINESS_LIMIT_CONTROL) is
    retried, a refusal of this one message (an illegal number) is not."""
    assert study.sms is not None
    async with gateway() as gw:
        sms = AliyunSms(
            ALIYUN_ID, ALIYUN_SECRET, study.sms, endpoint=gw.url("/aliyun/"), signature=signature
        )
        try:
            gw.code["aliyun"] = "isv.BUSINESS_LIMIT_CONTROL"
            with pytest.raises(Transient, match="BUSINESS_LIMIT_CONTROL"):
                await sms.send(_prompt())
            gw.code["aliyun"] = "isv.MOBILE_NUMBER_ILLEGAL"
            with pytest.raises(Rejected, match="MOBILE_NUMBER_ILLEGAL"):
                await sms.send(_prompt())
        finally:
            await sms.close()
    assert len(gw.got("aliyun")) == 2  # both were correctly signed requests


async def test_aliyun_v3_throttled_sms_stays_queued_then_goes(study: Study, tmp_path: Path) -> None:
    """Through the outbox: throttled → parked with the reason; sent once Aliyun takes it again
    (by the study clock); an illegal number fails its row."""
    t0 = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    db = await Database.open(tmp_path / "a.sqlite3")
    clock = FakeClock(t0)
    async with gateway() as gw:
        env = {
            "DIARYBOT_SMS": "aliyun:" + gw.url("/aliyun/"),
            "ALIBABA_CLOUD_ACCESS_KEY_ID": ALIYUN_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ALIYUN_SECRET,
        }
        provider = provider_from_env(env, study.sms)
        assert isinstance(provider, AliyunSms) and provider.signature == "v3"
        d = ChannelDispatcher(db, clock, [SmsRoute(provider)], seed=1)

        async def queue(phone: str) -> int:
            async with db.transaction() as conn:
                return await enqueue_sms(
                    conn, clock.now(), phone, "text", Priority.URGENT, template="safety",
                    params={"emergency": "120", "phone": "+862100000000"},
                )  # fmt: skip

        async def row(oid: int) -> tuple[str, int, str | None]:
            r = await db.fetchone(
                "SELECT status, attempts, last_error FROM outbox WHERE id = ?", (oid,)
            )
            assert r is not None
            return r["status"], r["attempts"], r["last_error"]

        try:
            gw.code["aliyun"] = "isv.BUSINESS_LIMIT_CONTROL"
            first = await queue("+8613812345678")
            d.start()
            await d.wait_idle()  # tried once, then parked until its retry time
            status, attempts, error = await row(first)
            assert (status, attempts) == ("queued", 1) and "BUSINESS_LIMIT_CONTROL" in str(error)
            del gw.code["aliyun"]
            await clock.advance(timedelta(minutes=1))
            d.wake()
            await d.wait_idle()
            assert (await row(first))[0] == "sent"
            gw.code["aliyun"] = "isv.MOBILE_NUMBER_ILLEGAL"
            second = await queue("+8613800000000")
            d.wake()
            await d.wait_idle()
            status, _, error = await row(second)
            assert status == "failed" and "MOBILE_NUMBER_ILLEGAL" in str(error)
        finally:
            await d.stop()
            await db.close()
    assert len(gw.got("aliyun")) == 3


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
    assert isinstance(provider, AliyunSms) and provider.signature == "v3"  # Alibaba's advice
    for value, chosen in (("v1", "v1"), (" V3 ", "v3"), ("", "v3")):
        picked = provider_from_env({**env, "ALIYUN_SMS_SIGNATURE": value}, study.sms)
        assert isinstance(picked, AliyunSms) and picked.signature == chosen
    for value in ("v2", "hmac-sha1", "3"):
        with pytest.raises(SmsConfigurationError, match=r"ALIYUN_SMS_SIGNATURE=.*expected v3"):
            provider_from_env({**env, "ALIYUN_SMS_SIGNATURE": value}, study.sms)
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


def test_run_stops_at_start_up_on_a_wrong_aliyun_signature(tmp_path: Path) -> None:
    """`diarybot run` says which setting is wrong in one line, never the secret, and starts
    nothing (no database is created)."""
    db = tmp_path / "d.sqlite3"
    env = clean_env(
        TELEGRAM_BOT_TOKEN="123456:TEST-TOKEN",
        TELEGRAM_BASE_URL="http://127.0.0.1:9/bot",  # never reached: it stops before
        DIARYBOT_DB=str(db),
        DIARYBOT_STUDY=str(site_study_file(tmp_path)),
        DIARYBOT_SMS="aliyun",
        ALIBABA_CLOUD_ACCESS_KEY_ID="key-id",
        ALIBABA_CLOUD_ACCESS_KEY_SECRET="very-secret",
        ALIYUN_SMS_SIGNATURE="v2",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--init"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert "ALIYUN_SMS_SIGNATURE='v2': expected v3" in err and "very-secret" not in err
    assert not db.exists()


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
