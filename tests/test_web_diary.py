"""The web diary over real HTTP (no JavaScript): enrolment on the web channel, the year-of-birth
check, a diary filled and submitted with plain form posts, and every refusal (forged or revoked
link, wrong year ×5, missing CSRF token, yesterday's form, a 5,000-character answer, a closed
window) answered clearly with nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.domain.study import Study
from tests.escalation_support import ZH_COORD
from tests.web_support import WebHarness, browser, fill, web_harness

URGENT = {
    "BLEED": "3",
    "BLEED_FAINT": "N",
    "URGENCY": "1",
    "LEAK": "0",
    "PAIN": "2",
    "BM": "3",
    "TENESMUS": "0",
    "FEVER": "N",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}
QUIET = {**URGENT, "BLEED": "0"}


@pytest.fixture
async def wh(tmp_path: Path, study: Study) -> AsyncIterator[WebHarness]:
    async with web_harness(tmp_path, study) as w:
        yield w


async def test_web_patient_fills_and_submits_with_plain_posts(wh: WebHarness) -> None:
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)  # 20:05 Shanghai: the Day -1 diary is open
    async with browser() as b:
        page = await b.get(link)
        assert page.status == 200
        assert "出生年份" in page.plain or "year of birth" in page.plain
        page = await b.post(link + "/year", {"year": "1956"})
        assert page.status == 200 and "第1题" in page.plain, page.plain
        page = await fill(wh, b, link, URGENT)
        # The urgent answer (dripping blood) is answered at once, as in the chat: the safety
        # text with its call buttons above the next question, before Submit.
        safety = [p for p in b.history if p.url.endswith("?m=safety")]
        assert len(safety) == 1 and "第2题" in safety[0].plain
        assert "我们已把您的回答转告研究团队" in safety[0].plain
        assert 'href="tel:120"' in safety[0].text
        assert page.url.endswith("/done"), page.url
        assert "谢谢" in page.plain
        assert 'href="tel:+862131166666"' in page.text and 'href="tel:120"' in page.text
    occ = await wh.h.rows("SELECT status FROM occurrences WHERE status = 'completed'")
    assert len(occ) == 1
    alerts = await wh.h.rows("SELECT rule, level FROM alerts")
    assert [(a["rule"], a["level"]) for a in alerts] == [("BLEED_HEAVY", "urgent")]
    await wh.h.settle()
    staff = wh.h.api.messages(ZH_COORD)
    assert any("RP-101" in (m.text or "") for m in staff)
    views = await wh.h.rows("SELECT action, new_value FROM audit WHERE action LIKE 'web_%'")
    assert {r["action"] for r in views} >= {"web_view", "web_answer", "web_device_added"}
    assert all('"channel": "web"' in r["new_value"] for r in views)


async def test_wrong_birth_year_five_times_locks_the_link_and_tells_staff(wh: WebHarness) -> None:
    link = await wh.enroll()
    before = await wh.counts()
    async with browser() as b:
        await b.get(link)
        for left in (4, 3, 2, 1):
            page = await b.post(link + "/year", {"year": "1957"})
            assert page.status == 200
            assert f"出生年份不对。您还可以再试 {left} 次。" in page.plain
        token = b.history[-1].csrf
        page = await b.post(link + "/year", {"year": "1957"})
        assert page.status == 403 and "已被锁定" in page.plain
        # Locked: even the right year opens nothing now.
        page = await b.post(link + "/year", {"year": "1956", "csrf": token})
        assert page.status == 403 and "已被锁定" in page.plain
        page = await b.get(link)
        assert page.status == 403
    after = await wh.counts()
    assert after["web_devices"] == before["web_devices"] == 0
    assert after["answers"] == before["answers"]
    alerts = await wh.h.rows("SELECT rule, level FROM alerts")
    assert [(a["rule"], a["level"]) for a in alerts] == [("WEB_LOCKED", "compliance")]
    await wh.h.settle()
    assert any(
        "网页日记链接已锁定" in (m.text or "") and "RP-101" in (m.text or "")
        for m in wh.h.api.messages(ZH_COORD)
    )
    audit = await wh.h.rows("SELECT action FROM audit WHERE action LIKE 'web_%'")
    actions = [r["action"] for r in audit]
    assert actions.count("web_year_refused") == 4 and actions.count("web_link_locked") == 1


async def test_forged_and_revoked_links_open_nothing(wh: WebHarness) -> None:
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)
    async with browser() as b:
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})
        page = await b.get(link)
        assert "第1题" in page.plain
        forged = link[:-6] + ("AAAAAA" if not link.endswith("AAAAAA") else "BBBBBB")
        before = await wh.counts()
        page = await b.get(forged)
        assert page.status == 404 and "这个链接无法使用" in page.plain
        occ = (await wh.h.rows("SELECT id FROM occurrences ORDER BY opens_at"))[0]["id"]
        page = await b.post(forged + "/act", {"do": f"a:{occ}:BLEED:0", "csrf": b.history[-2].csrf})
        assert page.status == 404
        assert await wh.counts() == before
        # Reissued: the old link (and the device that used it) stop working; the new one asks
        # for the year of birth again.
        from bot.web.links import reissue

        new = wh.local(await reissue(wh.h.rt, "RP-101", reason="phone replaced"))
        page = await b.get(link)
        assert page.status == 404 and "这个链接无法使用" in page.plain
        page = await b.get(new)
        assert page.status == 200 and "出生年份" in page.plain
    assert await wh.counts() == before


async def test_missing_or_wrong_csrf_token_changes_nothing(wh: WebHarness) -> None:
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)
    async with browser() as b:
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})
        page = await b.get(link)
        do = next(v for v in page.values() if v.startswith("a:"))
        before = await wh.counts()
        page = await b.post(link + "/act", {"do": do}, csrf=False)
        assert page.status == 403 and "这个页面已过期" in page.plain
        page = await b.post(link + "/act", {"do": do, "csrf": "0" * 64})
        assert page.status == 403
        assert await wh.counts() == before
    # Another browser's token does not work with this browser's cookie either.
    async with browser() as other:
        await other.get(link)
        page = await other.post(link + "/year", {"year": "1956", "csrf": "ab" * 32})
        assert page.status == 403
    assert await wh.counts() == before


async def test_yesterdays_form_and_a_closed_window_change_nothing(wh: WebHarness) -> None:
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)  # Day -1 open
    async with browser() as b:
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})
        page = await b.post(
            link + "/act", {"do": next(v for v in (await b.get(link)).values() if v.endswith(":0"))}
        )
        assert "第2题" in page.plain
        yesterday = page.values()[0]  # an URGENCY answer of the Day -1 diary
        token = page.csrf
        await wh.h.advance(hours=16)  # Dec 1 12:05: the Day -1 window has closed
        page = await b.get(link)
        assert "这份日记已经截止，不能再填写了。" in page.plain
        before = await wh.counts()
        page = await b.post(link + "/act", {"do": yesterday, "csrf": token})
        assert page.status == 200 and "?m=closed" in page.url
        assert await wh.counts() == before
        await wh.h.advance(hours=8)  # Dec 1 20:05: the Day 0 diary is open
        page = await b.get(link)
        assert "第1题" in page.plain
        before = await wh.counts()
        page = await b.post(link + "/act", {"do": yesterday, "csrf": page.csrf})
        assert "?m=closed" in page.url and "第1题" in page.plain  # today's diary, untouched
        assert await wh.counts() == before


async def test_a_5000_character_answer_is_refused_clearly(wh: WebHarness) -> None:
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)
    answers = {**QUIET, "OTHER": "Y"}
    async with browser() as b:
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})
        page = await b.get(link)
        for _ in range(20):
            if page.values("item"):
                break
            first = next(v for v in page.values() if v[:2] in ("a:", "t:"))
            code = first.split(":")[2]
            occ = first.split(":")[1]
            if code in ("COMPL", "EVENTS"):
                await b.post(link + "/act", {"do": f"t:{occ}:{code}:NONE"})
                page = await b.post(link + "/act", {"do": f"n:{occ}:{code}"})
            else:
                page = await b.post(link + "/act", {"do": f"a:{occ}:{code}:{answers[code]}"})
        assert page.values("item") == ["OTHER_TEXT"]
        before = await wh.counts()
        page = await b.post(
            link + "/act",
            {"occ": page.values("occ")[0], "item": "OTHER_TEXT", "text": "痛" * 5000},
        )
        assert page.status == 200 and "?e=too_long" in page.url
        assert "太长" in page.plain or "1000" in page.plain, page.plain
        assert page.values("item") == ["OTHER_TEXT"]  # still the same question
        assert await wh.counts() == before
        stored = await wh.h.rows("SELECT value FROM answers WHERE item = 'OTHER_TEXT'")
        assert stored == []
        # A body far beyond any answer is refused before it is read, also with a clear page.
        page = await b.post(
            link + "/act",
            {"occ": page.values("occ")[0], "item": "OTHER_TEXT", "text": "痛" * 60000},
        )
        assert page.status == 413 and "太长" in page.plain
        assert await wh.counts() == before


async def test_pages_are_small_scriptless_and_strict(wh: WebHarness) -> None:
    """≤ 50 KB per page (with its stylesheet), no script, CSP default-src 'self', private
    cookies, and no subject data in any address."""
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)
    async with browser() as b:
        pages = [await b.get(link)]
        pages.append(await b.post(link + "/year", {"year": "1956"}))
        pages.append(await fill(wh, b, link, URGENT))
        for path in ("", "/next", "/settings", "/help"):
            pages.append(await b.get(link + path))
        async with b.session.get(wh.url + "/static/web.css") as r:
            css = len(await r.read())
        async with b.session.get(link) as r:
            headers = r.headers
        cookies = {c.key: c for c in b.session.cookie_jar}
    for page in pages:
        assert page.status == 200, page.url
        assert len(page.text.encode()) + css <= 50 * 1024, page.url
        assert "<script" not in page.text and "RP-101" not in page.text
        assert "RP-101" not in page.url and "1956" not in page.url
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert cookies["dv"]["httponly"] and cookies["dv"]["samesite"] == "Lax"
    assert cookies["ds"]["httponly"]
    assert not cookies["dv"]["secure"]  # plain HTTP on the loopback: a Secure cookie would be lost
    # Behind the TLS proxy (X-Forwarded-Proto from the loopback) every cookie is Secure.
    async with browser() as b:
        async with b.session.get(link, headers={"X-Forwarded-Proto": "https"}) as r:
            assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]


async def test_settings_change_language_and_time(wh: WebHarness) -> None:
    link = await wh.enroll()
    async with browser() as b:
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})
        page = await b.get(link + "/settings")
        page = await b.post(link + "/settings", {"lang": "en", "time": "19:00"})
        assert "Saved." in page.plain and "Settings" in page.plain
        p = await wh.h.db_patient("RP-101")
        assert p.lang == "en" and p.prompt_time.strftime("%H:%M") == "19:00"
        page = await b.post(link + "/settings", {"lang": "fr", "time": "19:00"})
        assert "Please choose one of the options." in page.plain
        assert (await wh.h.db_patient("RP-101")).lang == "en"


async def test_rate_limit_per_link(tmp_path: Path, study: Study) -> None:
    from bot.web.server import WebConfig

    async with web_harness(tmp_path, study, WebConfig(per_link=5)) as w:
        link = await w.enroll()
        async with browser() as b:
            statuses = [(await b.get(link)).status for _ in range(7)]
        assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
        assert "操作太频繁" in (b.last.plain if b.last else "")


async def test_link_by_sms_and_the_address_in_prompt_sms(wh: WebHarness) -> None:
    """Enrolment queues the personal link as an SMS (the study's web_link template); the
    prompt SMS carry PUBLIC_URL/, which opens the diary on a phone that passed the check and
    otherwise says to open the personal link."""
    link = await wh.enroll()
    wh.h.rt.wake_sender()  # as the running bot's next look at the outbox would
    await wh.h.settle()
    sms = await wh.h.rows("SELECT destination, payload, status FROM outbox WHERE channel = 'sms'")
    assert [r["destination"] for r in sms] == ["+8613812345678"]
    token = link.rsplit("/", 1)[1]
    # Sent (the log provider in tests), and then the link is forgotten: only its hash is kept.
    assert sms[0]["status"] == "sent" and sms[0]["payload"] == '{"secret": true}'
    assert await wh.h.rows("SELECT id FROM outbox WHERE payload LIKE ?", (f"%{token}%",)) == []
    async with browser() as b:
        page = await b.get(wh.url + "/")
        assert page.status == 200 and "请打开您的个人日记链接" in page.plain
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})
        page = await b.get(wh.url + "/")
        assert page.url == link and "出生年份" not in page.plain
    # The one-time alert links of SMS / WeCom alerts are served by the same server.
    async with browser() as b:
        page = await b.get(wh.url + "/ack/forged-token")
        assert page.status == 404 and "<form" not in page.text
