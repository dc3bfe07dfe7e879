"""Which web page views are audited (issue 13: "every page view and answer audited").

The page a diary post redirects to is not audited again when it shows exactly the screen the
post's `web_answer` entry records, on the device that posted: that entry would repeat the one
before it. Every other view is audited: the first one, a reload, another device, a page after
a refused post, the thank-you page opened again. And the diary read without the write lock for
that page (`DiaryService.current`) is the one `open` shows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain.study import Study
from bot.web.patient import Followed
from storage import repo
from tests.escalation_support import QUIET
from tests.web_support import Page, WebHarness, browser, fill, web_harness


@pytest.fixture
async def wh(tmp_path: Path, study: Study) -> AsyncIterator[WebHarness]:
    async with web_harness(tmp_path, study) as w:
        yield w


async def entries(wh: WebHarness, action: str) -> list[dict[str, Any]]:
    rows = await wh.h.rows("SELECT new_value FROM audit WHERE action = ? ORDER BY id", (action,))
    return [json.loads(r["new_value"]) for r in rows]


async def test_the_page_after_a_post_is_recorded_once_and_every_other_view_is(
    wh: WebHarness,
) -> None:
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)  # 20:05 Shanghai: the Day -1 diary is open
    async with browser() as b:
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})  # a new device: its first view audited
        first = await entries(wh, "web_view")
        assert [v["page"] for v in first] == ["year", "diary"]
        assert first[-1]["status"] == "question" and first[-1]["item"] == "BLEED"

        page = await fill(wh, b, link, QUIET)
        assert page.url.endswith("/done") and "谢谢" in page.plain
        answers = await entries(wh, "web_answer")
        assert len(answers) >= 8 and answers[-1]["status"] == "submitted"
        # fill() opened the link once more before its first answer (no post before it): one
        # view; the pages after its posts are the screens the answers record: none.
        views = await entries(wh, "web_view")
        assert views[len(first) :] == [
            {
                "channel": "web",
                "page": "diary",
                "status": "question",
                "diary": first[-1]["diary"],
                "item": "BLEED",
            }
        ]
        assert answers[-2]["status"] == "review"  # the review screen was recorded by its post

        # The thank-you page opened again, and the link reloaded: each one audited.
        await b.get(link + "/done")
        await b.get(link)
        views = await entries(wh, "web_view")
        assert [v["page"] for v in views[-2:]] == ["done", "diary"]
        assert views[-1]["status"] == "already_done"


async def test_pages_with_the_safety_text_record_their_view_with_its_showing(
    wh: WebHarness,
) -> None:
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)
    async with browser() as b:
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})
        before = len(await entries(wh, "web_view"))
        page = await fill(wh, b, link, {**QUIET, "BLEED": "3", "BLEED_FAINT": "N"})  # urgent
        assert page.url.endswith("/done")
        assert len([p for p in b.history if p.url.endswith("?m=safety")]) == 1
    views = (await entries(wh, "web_view"))[before:]
    # fill()'s first open, the safety screen after the urgent answer, the thank-you page with
    # the safety text: each one recorded with its view; the other pages after posts are not.
    assert [(v["page"], v.get("item")) for v in views] == [
        ("diary", "BLEED"),
        ("diary", views[1]["item"]),
        ("done", None),
    ]
    assert views[1]["item"] != "BLEED"
    moments = [e["moment"] for e in await entries(wh, "safety_text_shown") if e["channel"] == "web"]
    assert moments == ["answer", "submit"]


def asked(page: Page) -> tuple[str, str]:
    """(occurrence id, item code) of the question a diary page asks."""
    _verb, occ, code = page.values()[0].split(":")[:3]
    return occ, code


async def test_a_reload_another_device_and_a_refused_post_are_audited(wh: WebHarness) -> None:
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)
    async with browser() as a, browser() as other:
        for b in (a, other):
            await b.get(link)
            await b.post(link + "/year", {"year": "1956"})
        occ, first = asked(await a.get(link))
        before = len(await entries(wh, "web_view"))

        # Device A answers: the page it is sent to is not recorded again ...
        page = await a.post(link + "/act", {"do": f"a:{occ}:{first}:{QUIET[first]}"})
        assert "第2题" in page.plain
        second = asked(page)[1]
        assert len(await entries(wh, "web_view")) == before
        # ... but the same page reloaded is, and so is the other phone's view of the diary.
        await a.get(link)
        page = await other.get(link)
        assert "第2题" in page.plain
        views = (await entries(wh, "web_view"))[before:]
        assert [(v["page"], v["status"], v["item"]) for v in views] == [
            ("diary", "question", second),
            ("diary", "question", second),
        ]

        # The other phone answers; A's next view follows no post of its own: audited.
        await other.post(link + "/act", {"do": f"a:{occ}:{second}:{QUIET[second]}"})
        page = await a.get(link)
        assert "第3题" in page.plain
        third = asked(page)[1]
        views = (await entries(wh, "web_view"))[before:]
        assert len(views) == 3 and views[-1]["item"] == third

        # A post that changes nothing (yesterday's button: the question already answered)
        # leads to a page with a notice: that view is audited.
        page = await a.post(link + "/act", {"do": f"a:{occ}:{first}:2"})
        assert page.url.endswith("?m=stale") and "第3题" in page.plain
        views = (await entries(wh, "web_view"))[before:]
        assert len(views) == 4 and views[-1]["item"] == third
    assert (await entries(wh, "web_answer"))[-1]["status"] == "stale"
    rows = await wh.h.rows("SELECT value FROM answers WHERE item = ?", (first,))
    assert [r["value"] for r in rows] == [QUIET[first]]


async def test_current_reads_what_open_shows(wh: WebHarness) -> None:
    link = await wh.enroll()
    await wh.h.advance(hours=1, minutes=5)
    svc = wh.h.bot.diary
    patient = await repo.patient_by_subject(wh.h.rt.db.conn, "RP-101")
    assert patient is not None
    assert await svc.current(patient) is None  # no session yet: `open` starts one (a write)
    async with browser() as b:
        await b.get(link)
        await b.post(link + "/year", {"year": "1956"})
        page = await b.get(link)
        stored: dict[str, str] = {}
        for _ in range(3):
            occ, code = asked(page)
            now = await svc.current(patient)
            opened = await svc.open(patient)
            assert now is not None and now.item is not None and now.item.code == code
            assert (now.status, now.occ, now.item, now.answers, now.returning) == (
                opened.status,
                opened.occ,
                opened.item,
                opened.answers,
                opened.returning,
            )
            page = await b.post(link + "/act", {"do": f"a:{occ}:{code}:{QUIET[code]}"})
            stored[code] = QUIET[code]
    now = await svc.current(patient)
    assert now is not None and now.answers == stored and len(stored) == 3


def test_a_post_is_followed_once_and_not_after_the_time_limit() -> None:
    at = [100.0]
    followed = Followed(ttl=60.0, clock=lambda: at[0])

    a, b = (1, "a"), (1, "b")  # (link id, device)
    screen = ("question", "D-1", "PAIN")
    followed.note_for(a, screen)
    assert followed.take_for(b) is None
    assert followed.take_for(a) == screen
    assert followed.take_for(a) is None
    followed.note_for(a, screen)
    at[0] += 61
    assert followed.take_for(a) is None
