"""Alert routes end to end: an alert raised through the real bot reaches Telegram, the WeCom
robot, the on-call investigator's SMS and e-mail; one route failing never holds up another;
the one-time link in an SMS records who saw the alert."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from email import message_from_bytes, message_from_string, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot.channels import links
from bot.channels.email import parse_smtp_url, send_email
from bot.domain.study import Study
from bot.i18n import t
from bot.services.enrolment import materialize
from tests.channels_support import Gateway, MailBox, gateway, smtp_server
from tests.console_support import (
    PASSWORD,
    accept_invite,
    code_at,
    console_client,
    csrf_of,
    invite,
)
from tests.escalation_support import (
    EN_COORD,
    GROUP,
    INVESTIGATOR,
    actions,
    alert_messages,
    day0_patient,
    fast_harness,
    submit,
    team,
)
from tests.harness import Harness
from tests.test_clinical_flow_e2e import answer

ONCALL = "+8613900000001"
TEAM_MAIL = "team@example-hospital.cn"


@contextlib.contextmanager
def mailbox() -> Iterator[tuple[str, MailBox]]:
    with smtp_server() as (controller, box):
        yield f"smtp://{controller.hostname}:{controller.port}", box


@pytest.fixture
async def routed(
    tmp_path: Path, study: Study, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Harness, Gateway, MailBox]]:
    async with gateway() as gw:
        with mailbox() as (smtp_url, box):
            for name, value in {
                "DIARYBOT_SMS": "webhook:" + gw.url("/sms"),
                "DIARYBOT_ONCALL_SMS": ONCALL,
                "DIARYBOT_ONCALL_STAFF": str(INVESTIGATOR),
                "DIARYBOT_WECOM_WEBHOOK": gw.url("/wecom") + "?key=robot-key",
                "DIARYBOT_WECOM_RATE": "100",
                "DIARYBOT_SMTP_URL": smtp_url,
                "DIARYBOT_SMTP_RATE": "100",
                "DIARYBOT_ALERT_EMAIL": TEAM_MAIL,
                "DIARYBOT_PUBLIC_URL": "https://diary.example-hospital.cn",
                "DIARYBOT_LINK_SECRET": "test-secret",
            }.items():
                monkeypatch.setenv(name, value)
            async with fast_harness(tmp_path, study) as h:
                await team(h)
                yield h, gw, box


def _mail_subject(raw: str) -> str:
    return str(make_header(decode_header(message_from_string(raw)["Subject"])))


def _mail_body(raw: str) -> str:
    msg = message_from_bytes(raw.encode("utf-8"), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return str(msg.get_content())


async def test_urgent_alert_reaches_every_route_and_is_resent_on_each(
    routed: tuple[Harness, Gateway, MailBox],
) -> None:
    h, gw, box = routed
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="9")
    [alert] = await h.rows("SELECT id, level FROM alerts")
    assert alert["level"] == "urgent"

    # Telegram as before.
    assert len(alert_messages(h, EN_COORD)) == 1 and len(alert_messages(h, GROUP)) == 1
    # WeCom: the card in the group language (the study's first, Chinese) as markdown + link.
    [wecom] = gw.got("wecom")
    content = wecom["markdown"]["content"]
    assert "RP-001" in content and "紧急" in content
    assert "](https://diary.example-hospital.cn/ack/" in content
    # SMS to the on-call investigator, in their language (en), with no clinical detail.
    [sms] = gw.got("sms")
    assert sms["to"] == ONCALL
    assert sms["text"].startswith(f"URGENT alert #{alert['id']}, subject RP-001. Open: https://")
    assert "Pain" not in sms["text"]
    # E-mail to the team address.
    [(_sender, rcpts, raw)] = box.messages
    assert rcpts == [TEAM_MAIL]
    assert "RP-001" in _mail_subject(raw)
    assert "/ack/" in _mail_body(raw)

    # Re-alerting works the same on every route: +15 min, one more copy each.
    await h.advance(minutes=15)
    assert len(gw.got("wecom")) == 2 and len(gw.got("sms")) == 2 and len(box.messages) == 2
    assert "15" in gw.got("wecom")[1]["markdown"]["content"]

    rows = await h.rows(
        "SELECT channel, priority, status FROM outbox WHERE channel != 'telegram' ORDER BY id"
    )
    assert {r["channel"] for r in rows} == {"sms", "wecom", "email"}
    assert {(r["priority"], r["status"]) for r in rows} == {(0, "sent")}


async def test_a_new_urgent_finding_on_a_sent_card_notifies_on_every_route(
    routed: tuple[Harness, Gateway, MailBox],
) -> None:
    h, gw, box = routed
    p = await day0_patient(h, lang="en")
    await p.send("/diary")
    await answer(h, p, "BLEED", "3")  # clots: the card goes out on every route
    assert len(gw.got("wecom")) == len(gw.got("sms")) == len(box.messages) == 1
    await h.advance(minutes=2)
    await answer(h, p, "BLEED_FAINT", "Y")  # a new urgent finding joins the same card
    zh = t("zh_Hans")
    added = zh("➕ New on this alert: {reasons}", reasons=zh("Dizziness or fainting with bleeding"))
    [_first, wecom] = gw.got("wecom")
    assert wecom["markdown"]["content"].startswith(added)
    assert len(gw.got("sms")) == 2 and gw.got("sms")[1]["to"] == ONCALL
    assert len(box.messages) == 2 and _mail_body(box.messages[1][2]).startswith(added)
    await answer(h, p, "MUCUS", "0")  # nothing new: no route hears again
    assert len(gw.got("wecom")) == len(gw.got("sms")) == len(box.messages) == 2
    assert len(await h.rows("SELECT id FROM alerts")) == 1


async def test_review_alert_goes_to_wecom_and_email_not_sms(
    routed: tuple[Harness, Gateway, MailBox],
) -> None:
    h, gw, box = routed
    p = await day0_patient(h, lang="en")
    await submit(p, OTHER="Y", OTHER_TEXT="a rash")
    [alert] = await h.rows("SELECT level FROM alerts")
    assert alert["level"] == "review"
    assert len(gw.got("wecom")) == 1 and len(box.messages) == 1
    assert gw.got("sms") == []


async def test_one_route_failing_or_down_never_blocks_the_others(
    tmp_path: Path, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gateway() as gw:
        monkeypatch.setenv("DIARYBOT_SMS", "webhook:" + gw.url("/sms"))
        monkeypatch.setenv("DIARYBOT_ONCALL_SMS", ONCALL)
        monkeypatch.setenv("DIARYBOT_WECOM_WEBHOOK", gw.url("/wecom") + "?key=robot-key")
        monkeypatch.setenv("DIARYBOT_SMTP_URL", "smtp://127.0.0.1:9")  # nothing listens: down
        monkeypatch.setenv("DIARYBOT_ALERT_EMAIL", TEAM_MAIL)
        gw.fail["wecom"] = 500
        async with fast_harness(tmp_path, study) as h:
            await team(h)
            p = await day0_patient(h, lang="en")
            await submit(p, PAIN="9")
            # Telegram and SMS delivered; WeCom (500) and e-mail (down) wait for a retry.
            assert len(alert_messages(h, EN_COORD)) == 1
            assert len(gw.got("sms")) == 1
            assert gw.got("wecom") == []
            waiting = await h.rows(
                "SELECT channel, attempts, last_error FROM outbox"
                " WHERE status = 'queued' ORDER BY channel"
            )
            assert [(r["channel"], r["attempts"]) for r in waiting] == [("email", 1), ("wecom", 1)]
            assert "HTTP 500" in waiting[1]["last_error"]

            # The robot recovers: the next retry delivers it; the mail server is still down.
            del gw.fail["wecom"]
            await h.advance(seconds=10)
            await _until(lambda: len(gw.got("wecom")) == 1)
            left = await h.rows("SELECT channel FROM outbox WHERE status = 'queued'")
            assert [r["channel"] for r in left] == ["email"]
            assert len(gw.got("sms")) == 1  # nothing sent twice


async def _until(check: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_sms_link_asks_for_sign_in_and_records_seen_once_for_the_member(
    routed: tuple[Harness, Gateway, MailBox],
) -> None:
    """The link shows nothing clinical to whoever holds it: it leads to the console's sign-in
    and back; the first signed-in opening records "seen" for the member who signed in (not the
    one it was sent to) and opens the alert; the link is then used up."""
    h, gw, _box = routed
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="9")
    [sms] = gw.got("sms")
    found = re.search(r"https://diary\.example-hospital\.cn(/ack/\S+)", sms["text"])
    assert found is not None
    path = found.group(1)
    token = path.removeprefix("/ack/")
    [alert] = await h.rows("SELECT id FROM alerts")
    aid = alert["id"]
    async with console_client(h) as client:
        # Anyone holding the link (a WeCom group, a link preview): the sign-in page, no alert.
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == f"/console/ack/{token}"
        resp = await client.get(f"/console/ack/{token}", allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"] == f"/console/login?next=/console/ack/{token}"
        page = await client.get(path)
        html = await page.text()
        assert page.status == 200 and page.url.path == "/console/login"
        for clinical in ("RP-001", "Pain", "Dr Li", f"#{aid}"):
            assert clinical not in html, clinical
        assert f'name="next" value="/console/ack/{token}"' in html
        csp = page.headers["Content-Security-Policy"]
        assert "style-src 'self'" in csp and "unsafe-inline" not in csp
        assert await actions(h, "alert_seen") == []  # opening without signing in records nothing

        # Anna (a coordinator, not the on-call investigator the SMS went to) signs in.
        secret = await accept_invite(
            h,
            client,
            await invite(h, "anna@example.org", "coordinator", telegram_id=EN_COORD, name="Anna"),
        )
        resp = await client.post(
            "/console/login",
            data={
                "csrf": csrf_of(html),
                "email": "anna@example.org",
                "password": PASSWORD,
                "code": code_at(h, secret),
                "next": f"/console/ack/{token}",
            },
            allow_redirects=False,
        )
        assert resp.status == 303 and resp.headers["Location"] == f"/console/ack/{token}"
        resp = await client.get(f"/console/ack/{token}", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == f"/console/alerts/{aid}"
        page = await client.get(f"/console/alerts/{aid}")
        card = await page.text()
        assert page.status == 200 and "RP-001" in card and "Pain" in card
        assert f'value="al:ack:{aid}"' in card  # acknowledge right there
        [seen] = await h.rows(
            "SELECT actor, entity, new_value FROM audit WHERE action = 'alert_seen'"
        )
        assert seen["actor"] == f"staff:{EN_COORD}" != f"staff:{INVESTIGATOR}"
        assert seen["entity"] == f"alert:{aid}" and '"route": "sms"' in seen["new_value"]

        # Used up: opening it again (signed in or not) says so and points to the console.
        for again in (await client.get(path), await client.get(f"/console/ack/{token}")):
            assert again.status == 410
            text = await again.text()
            assert "already been used" in text and f'href="/console/alerts/{aid}"' in text
            assert "Pain" not in text
        assert await actions(h, "alert_seen") == ["alert_seen"]

        # Forged: another alert number under the same signature, a changed signature, nonsense.
        body, sig = token.split(".")
        forged = [f"/ack/{body}.{sig[:-2]}AA", f"/ack/{body[:-1]}.{sig}", "/ack/nonsense"]
        for url in forged:
            resp = await client.get(url, headers={"Accept-Language": "zh-CN"})
            assert resp.status == 404
        # Expired: a link made 73 hours ago.
        async with h.rt.db.transaction() as conn:
            old = await links.make(
                conn,
                alert_id=aid,
                route="wecom",
                staff_id=None,
                recipient="WeCom",
                lang="en",
                now=h.rt.now() - timedelta(hours=73),
            )
        resp = await client.get("/ack/" + old.rsplit("/ack/", 1)[1])
        assert resp.status == 410 and "expired" in await resp.text()
        assert await actions(h, "alert_seen") == ["alert_seen"]
        [used] = await h.rows("SELECT COUNT(*) AS n FROM alert_links WHERE used_at IS NOT NULL")
        assert used["n"] == 1  # only the SMS link Anna opened

    # Signed out, in Chinese: forged and expired links get a clear page in the reader's language.
    async with console_client(h) as client:
        zh = {"Accept-Language": "zh-CN"}
        for url in forged:
            resp = await client.get(url, headers=zh)
            text = await resp.text()
            assert resp.status == 404 and "链接无效" in text and "RP-001" not in text
            assert "<form" not in text
        assert await actions(h, "alert_seen") == ["alert_seen"]


async def test_next_after_sign_in_stays_inside_the_console(
    routed: tuple[Harness, Gateway, MailBox],
) -> None:
    """`next` takes a path under /console/ only: another site, a protocol-relative or
    backslashed address, a dot segment (plain or encoded) or a header break is dropped, and the
    member lands on the inbox."""
    h, _gw, _box = routed
    async with console_client(h) as client:
        secret = await accept_invite(h, client, await invite(h, "a@example.org", "coordinator"))
        bad = [
            "https://evil.example/",
            "//evil.example/x",
            "/console//evil.example",
            "/console/../p/x",
            "/console/%2e%2e/p/x",
            "/console/%2F%2Fevil.example",
            "/console/\\evil.example",
            "/console/x\r\nSet-Cookie: a=b",
            "javascript:alert(1)",
            "/ack/abc.def",
        ]
        for target in bad:
            page = await client.get("/console/login", params={"next": target})
            assert 'name="next" value=""' in await page.text(), target
        html = await (await client.get("/console/login")).text()
        resp = await client.post(
            "/console/login",
            data={
                "csrf": csrf_of(html),
                "email": "a@example.org",
                "password": PASSWORD,
                "code": code_at(h, secret),
                "next": "//evil.example/x",
            },
            allow_redirects=False,
        )
        assert resp.status == 303 and resp.headers["Location"] == "/console/"


async def test_web_patient_gets_prompt_and_reminder_by_sms(
    routed: tuple[Harness, Gateway, MailBox],
) -> None:
    """A web-diary patient (`channel` and `phone`, migration 0013) is prompted and reminded by
    SMS, through the same scheduler."""
    h, gw, _box = routed
    await h.enroll("RP-009", injection=date(2026, 11, 30), lang="zh_Hans")
    async with h.rt.db.transaction() as conn:
        await conn.execute(
            "UPDATE patients SET status = 'active', channel = 'web', phone = '+8613812345678'"
            " WHERE subject = 'RP-009'"
        )
        await materialize(h.rt, conn, await h.db_patient("RP-009"), h.rt.now())
    await h.advance(hours=1)  # 20:00 Shanghai: Day 0 opens
    [prompt] = gw.got("sms")
    assert prompt["to"] == "+8613812345678"
    assert prompt["text"].startswith("您今天的研究日记可以填写了")
    assert "https://diary.example-hospital.cn/" in prompt["text"]
    await h.advance(hours=3)  # the reminder
    assert len(gw.got("sms")) == 2
    assert gw.got("sms")[1]["text"].startswith("提醒：今天的研究日记还可以填写")
    rows = await h.rows("SELECT action FROM audit WHERE subject = 'RP-009' ORDER BY id")
    assert [r["action"] for r in rows][-2:] == ["diary_prompted", "diary_reminded"]


async def test_sae_clock_reminders_reach_every_route(
    routed: tuple[Harness, Gateway, MailBox],
) -> None:
    """Acknowledged and triaged as a possible SAE in Telegram: the re-sends stop on every
    route, and the hourly SAE reminder reaches WeCom, the on-call SMS and e-mail too."""
    h, gw, box = routed
    p = await day0_patient(h, lang="en")
    await submit(p, PAIN="9")
    coord = h.player(EN_COORD, "en")
    await coord.tap("Acknowledge", alert_messages(h, EN_COORD)[0])
    await coord.tap("Possible SAE", alert_messages(h, EN_COORD)[0])
    counts = (len(gw.got("wecom")), len(gw.got("sms")), len(box.messages))
    assert counts == (1, 1, 1)
    await h.advance(minutes=59)  # acknowledged: no re-send at 15, 30, 45 min
    assert (len(gw.got("wecom")), len(gw.got("sms")), len(box.messages)) == counts
    await h.advance(minutes=1)  # the SAE reminder
    assert (len(gw.got("wecom")), len(gw.got("sms")), len(box.messages)) == (2, 2, 2)
    assert gw.got("sms")[1]["text"].startswith("Possible SAE alert #")
    assert "可能的SAE尚未上报申办方" in _mail_body(box.messages[1][2])  # the group language
    assert "24" in gw.got("wecom")[1]["markdown"]["content"]


async def test_send_email_and_smtp_urls() -> None:
    """The one e-mail sender (alert route, watchdog): a loopback SMTP server gets it; the URL
    forms parse; the password never shows in the config's repr."""
    cfg = parse_smtp_url("smtps://diary%40h.cn:s3cret@mail.h.cn?from=alerts@h.cn")
    assert (cfg.host, cfg.port, cfg.security, cfg.user, cfg.sender) == (
        "mail.h.cn", 465, "tls", "diary@h.cn", "alerts@h.cn",
    )  # fmt: skip
    assert "s3cret" not in repr(cfg)
    assert parse_smtp_url("smtp+starttls://mail.h.cn").port == 587
    with pytest.raises(ValueError, match="DIARYBOT_SMTP_URL"):
        parse_smtp_url("http://mail.h.cn")
    with mailbox() as (url, box):
        await send_email(url, TEAM_MAIL, "研究警报", "正文 body")
    [(_sender, rcpts, raw)] = box.messages
    assert rcpts == [TEAM_MAIL] and _mail_subject(raw) == "研究警报"
    assert _mail_body(raw).strip() == "正文 body"
