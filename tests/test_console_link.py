"""The console's "Link and channel" page over HTTP: a new web link (sent by SMS), a new one-time
code, unlinking a lost Telegram account, moving between Telegram and the web diary — each with
a reason, under the signed-in member, shown once; and every refusal changing nothing, in the
member's language."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.followup import lifecycle
from bot.services.enrolment import enroll
from tests.console_support import PASSWORD, console_client, csrf_of, member
from tests.escalation_support import ADMIN, EN_COORD, ZH_COORD, day0_patient, submit
from tests.harness import Harness
from tests.web_support import PUBLIC

PHONE = "+8613812345678"
LINK = re.compile(re.escape(PUBLIC) + r"/p/[A-Za-z0-9_-]{43}")
CODE = re.compile(r'<code class="code">([^<]+)</code>')


@pytest.fixture
def h(escalation_team: Harness) -> Harness:
    escalation_team.rt.public_url = PUBLIC
    return escalation_team


async def web_patient(h: Harness, subject: str = "RP-101") -> str:
    result = await enroll(
        h.rt,
        subject,
        date(2026, 12, 1),
        "zh_Hans",
        "Asia/Shanghai",
        h.study.default_prompt_time,
        channel="web",
        phone=PHONE,
        birth_year=1956,
    )
    assert result.link
    return result.link


async def post(
    client: TestClient[Any, Any], subject: str, data: dict[str, str], **kw: Any
) -> tuple[int, str]:
    path = f"/console/patients/{subject}/link"
    page = await client.get(path)
    assert page.status == 200, (path, page.status)
    resp = await client.post(path, data={"csrf": csrf_of(await page.text()), **data}, **kw)
    return resp.status, await resp.text()


async def state(h: Harness) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a link or channel action could change (the console's own sign-ins, refusals
    and page views aside)."""
    queries = {
        "patients": "SELECT subject, channel, phone, birth_year, chat_id, status FROM patients",
        "links": "SELECT patient_id, revoked_at FROM web_links ORDER BY id",
        "codes": "SELECT patient_id, revoked_at, used_at FROM enrolment_codes ORDER BY rowid",
        "outbox": "SELECT channel, ref FROM outbox ORDER BY id",
        "audit": "SELECT action, actor, subject, reason FROM audit"
        " WHERE action NOT LIKE 'console%' AND action != 'staff_access' ORDER BY id",
    }
    return {k: [tuple(r) for r in await h.rows(q)] for k, q in queries.items()}


async def entry(h: Harness, action: str) -> dict[str, Any]:
    [row] = await h.rows(
        "SELECT actor, subject, reason, new_value FROM audit WHERE action = ?", (action,)
    )
    return dict(row)


async def test_a_new_web_link_is_sent_by_sms_and_shown_once(h: Harness) -> None:
    old = await web_patient(h)
    async with console_client(h) as client:
        await member(h, client, "anna@example.org", "coordinator", telegram_id=EN_COORD)
        page = await (await client.get("/console/patients/RP-101")).text()
        assert "/console/patients/RP-101/link" in page
        page = await (await client.get("/console/patients/RP-101/link")).text()
        # Only what applies to a web patient.
        assert 'id="reissue-link"' in page and 'id="to-telegram"' in page
        assert 'id="new-code"' not in page and 'id="unlink"' not in page
        assert 'id="to-web"' not in page
        status, html = await post(
            client, "RP-101", {"action": "reissue_link", "reason": "phone replaced"}
        )
        assert status == 200, html
        [new] = set(LINK.findall(html))
        assert new != old and "<svg" in html and "sent to the patient by SMS" in html
        again = await (await client.get("/console/patients/RP-101/link")).text()
        assert new not in again  # shown once
    assert [tuple(r) for r in await h.rows("SELECT revoked_at IS NULL FROM web_links")] == [
        (0,),
        (1,),
    ]
    e = await entry(h, "web_link_reissued")
    assert (e["actor"], e["subject"], e["reason"]) == (
        f"staff:{EN_COORD}",
        "RP-101",
        "phone replaced",
    )
    assert new.rsplit("/", 1)[1] not in (e["new_value"] or "")
    sms = await h.rows("SELECT destination, ref FROM outbox WHERE channel = 'sms' ORDER BY id")
    assert len(sms) == 2 and sms[-1]["destination"] == PHONE  # at enrolment, and now


async def test_a_new_code_then_unlinking_a_lost_account(h: Harness) -> None:
    old = await h.enroll("RP-020", lang="en")
    async with console_client(h) as client:
        await member(h, client, "anna@example.org", "coordinator", telegram_id=EN_COORD)
        page = await (await client.get("/console/patients/RP-020/link")).text()
        assert 'id="new-code"' in page and 'id="to-web"' in page
        assert 'id="unlink"' not in page and 'id="reissue-link"' not in page
        status, html = await post(
            client, "RP-020", {"action": "new_code", "reason": "paper code lost"}
        )
        assert status == 200, html
        m = CODE.search(html)
        assert m and m.group(1) != old and "<svg" in html  # the code and its t.me QR code
        code = m.group(1)
        assert code not in await (await client.get("/console/patients/RP-020/link")).text()
        e = await entry(h, "code_reissue")
        assert (e["actor"], e["reason"]) == (f"staff:{EN_COORD}", "paper code lost")
        patient = h.player(620, "en")
        await patient.send(f"/start {old}")
        assert (await h.db_patient("RP-020")).chat_id is None  # the old code stopped working
        await patient.send(f"/start {code}")
        assert (await h.db_patient("RP-020")).chat_id == 620
        # Linked now: the page offers unlinking instead of a code.
        page = await (await client.get("/console/patients/RP-020/link")).text()
        assert 'id="unlink"' in page and 'id="new-code"' not in page
        status, html = await post(
            client,
            "RP-020",
            {"action": "unlink", "reason": "phone stolen"},
            allow_redirects=False,
        )
        assert status == 303
        page = await (await client.get("/console/patients/RP-020/link?done=unlink")).text()
        assert 'id="done"' in page and 'id="new-code"' in page
    assert (await h.db_patient("RP-020")).chat_id is None
    e = await entry(h, "unlink")
    assert (e["actor"], e["reason"]) == (f"staff:{EN_COORD}", "phone stolen")


async def test_moving_to_the_web_diary_and_back(h: Harness) -> None:
    await day0_patient(h)
    async with console_client(h) as client:
        await member(h, client, "anna@example.org", "coordinator", telegram_id=EN_COORD)
        before = await state(h)
        for form, expect in (
            ({"phone": "12345", "birth_year": "1956"}, "international form"),
            ({"phone": PHONE, "birth_year": "19x6"}, "four digits"),
            ({"phone": PHONE, "birth_year": "2020"}, "four digits"),  # not an adult
            ({"phone": PHONE, "birth_year": ""}, "four digits"),  # none known yet
        ):
            status, html = await post(
                client, "RP-001", {"action": "to_web", "reason": "no Telegram", **form}
            )
            assert status == 400 and expect in html, html
            assert await state(h) == before
        status, html = await post(
            client,
            "RP-001",
            {"action": "to_web", "reason": "no Telegram", "phone": PHONE, "birth_year": "1956"},
        )
        assert status == 200, html
        assert len(set(LINK.findall(html))) == 1 and "now uses the web diary" in html
        p = await h.db_patient("RP-001")
        assert (p.channel, p.phone, p.chat_id) == ("web", PHONE, None)
        sms = await h.rows("SELECT destination FROM outbox WHERE channel = 'sms'")
        assert [r["destination"] for r in sms] == [PHONE]
        status, html = await post(
            client, "RP-001", {"action": "to_telegram", "reason": "has Telegram again"}
        )
        assert status == 200, html
        assert CODE.search(html) and "now uses Telegram" in html
    p = await h.db_patient("RP-001")
    assert (p.channel, p.phone) == ("telegram", None)
    rows = await h.rows(
        "SELECT actor, old_value, new_value, reason FROM audit WHERE action = 'channel_changed'"
    )
    assert [(r["actor"], r["reason"]) for r in rows] == [
        (f"staff:{EN_COORD}", "no Telegram"),
        (f"staff:{EN_COORD}", "has Telegram again"),
    ]


async def test_refusals_change_nothing(h: Harness) -> None:
    await web_patient(h)
    await h.enroll("RP-020", lang="en")
    await h.enroll("RP-030", lang="en")
    await lifecycle.withdraw(h.rt, "RP-030", actor="cli", reason="consent withdrawn")
    before = await state(h)
    async with console_client(h) as client:  # a monitor: no page, and no POST either
        await member(h, client, "mon@example.org", "monitor")
        assert (await client.get("/console/patients/RP-101")).status == 200
        page = await (await client.get("/console/patients/RP-101")).text()
        assert "/link" not in page
        assert (await client.get("/console/patients/RP-101/link")).status == 403
        csrf = csrf_of(await (await client.get("/console/patients")).text())
        resp = await client.post(
            "/console/patients/RP-101/link",
            data={"csrf": csrf, "action": "reissue_link", "reason": "x"},
        )
        assert resp.status == 403
    async with console_client(h) as client:  # an admin gives links, but moves no one
        await member(h, client, "admin@example.org", "admin", telegram_id=ADMIN)
        page = await (await client.get("/console/patients/RP-101/link")).text()
        assert 'id="reissue-link"' in page and 'id="to-telegram"' not in page
        status, _ = await post(client, "RP-101", {"action": "to_telegram", "reason": "x"})
        assert status == 403
    refused = await h.rows("SELECT actor, new_value FROM audit WHERE action = 'console_refused'")
    assert len(refused) == 3 and f"staff:{ADMIN}" in {r["actor"] for r in refused}
    async with console_client(h) as client:
        await member(h, client, "anna@example.org", "coordinator", telegram_id=EN_COORD)
        resp = await client.post(
            "/console/patients/RP-101/link", data={"action": "reissue_link", "reason": "x"}
        )
        assert resp.status == 403  # no CSRF token
        for subject, form, expect in (
            ("RP-101", {"action": "reissue_link", "reason": " "}, "Please give a reason."),
            ("RP-101", {"action": "reissue_link", "reason": "x" * 501}, "too long"),
            ("RP-101", {"action": "explode", "reason": "x"}, "This is not available."),
            ("RP-020", {"action": "reissue_link", "reason": "x"}, "does not use the web diary"),
            ("RP-101", {"action": "new_code", "reason": "x"}, "uses the web diary"),
            ("RP-101", {"action": "unlink", "reason": "x"}, "not linked to a Telegram"),
            ("RP-101", {"action": "to_web", "reason": "x", "phone": PHONE}, "already uses"),
            ("RP-020", {"action": "to_telegram", "reason": "x"}, "already uses Telegram"),
            ("RP-030", {"action": "new_code", "reason": "x"}, "has withdrawn"),
            ("RP-030", {"action": "to_web", "reason": "x", "phone": PHONE}, "has withdrawn"),
        ):
            status, html = await post(client, subject, form)
            assert status == 400 and expect in html, (form, html)
        page = await (await client.get("/console/patients/RP-030/link")).text()
        assert 'id="nothing"' in page and "<button" not in page.split("<main")[-1]
    assert await state(h) == before
    assert len(await h.rows("SELECT * FROM audit WHERE action = 'console_csrf_refused'")) == 1


async def test_a_chinese_member_is_refused_in_chinese(h: Harness) -> None:
    p = await day0_patient(h)
    await submit(p, PAIN="3")
    async with console_client(h) as client:
        await member(
            h, client, "wang@example.org", "coordinator", telegram_id=ZH_COORD, lang="zh_Hans"
        )
        before = await state(h)
        status, html = await post(client, "RP-001", {"action": "reissue_link", "reason": "换手机"})
        assert status == 400 and "RP-001 没有使用网页日记。" in html
        status, html = await post(
            client, "RP-001", {"action": "to_web", "reason": "换手机", "phone": "123"}
        )
        assert status == 400 and "请按国际格式填写手机号码" in html and "E.164" not in html
        # Enrolment and corrections too: the service's reason in the member's language.
        page = await (await client.get("/console/enrol/csv")).text()
        csv = "subject,injection_date,lang,timezone,prompt_time\nRP-050,2026-12-10,zh,,\n"
        resp = await client.post(
            "/console/enrol/csv",
            data={"csrf": csrf_of(page), "step": "preview", "csv": csv + csv.split("\n")[1]},
        )
        assert resp.status == 400 and "第3行：RP-050 出现了两次。" in await resp.text()
        page = await (await client.get("/console/patients/RP-001/correct")).text()
        resp = await client.post(
            "/console/patients/RP-001/correct",
            data={
                "csrf": csrf_of(page),
                "day": "0",
                "item": "PAIN",
                "value": "3",
                "reason": "核对",
                "password": PASSWORD,
            },
        )
        text = await resp.text()
        assert resp.status == 400 and "第0天的 PAIN 已经是 3。" in text and "already" not in text
        assert await state(h) == before


async def test_enrol_a_web_patient_from_the_console(h: Harness) -> None:
    form = {
        "subject": "RP-110",
        "injection_date": "2026-12-10",
        "lang": "zh_Hans",
        "timezone": "Asia/Shanghai",
        "prompt_time": "20:00",
        "channel": "web",
        "phone": PHONE,
        "birth_year": "1956",
    }
    async with console_client(h) as client:
        await member(h, client, "anna@example.org", "coordinator", telegram_id=EN_COORD)

        async def enrol(data: dict[str, str]) -> tuple[int, str]:
            page = await (await client.get("/console/enrol")).text()
            resp = await client.post("/console/enrol", data={"csrf": csrf_of(page), **data})
            return resp.status, await resp.text()

        for bad, expect in (
            ({"phone": "0138 1234 5678"}, "Not enrolled: Please give the mobile number"),
            ({"birth_year": "56"}, "four digits"),
            ({"birth_year": ""}, "four digits"),
            ({"channel": "wechat"}, "This is not available."),
        ):
            status, html = await enrol({**form, **bad})
            assert status == 400 and expect in html, (bad, html)
        assert await h.rows("SELECT * FROM patients") == []
        status, html = await enrol(form)
        assert status == 200, html
        assert len(set(LINK.findall(html))) == 1 and "<svg" in html
        assert "sent to the patient by SMS" in html and 'class="code"' not in html
    p = await h.db_patient("RP-110")
    assert (p.channel, p.phone, p.status) == ("web", PHONE, "active")
    [sms] = await h.rows("SELECT destination FROM outbox WHERE channel = 'sms'")
    assert sms["destination"] == PHONE
    assert (await entry(h, "enrol"))["actor"] == f"staff:{EN_COORD}"
