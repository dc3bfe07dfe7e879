"""The web diary under test: the real bot (harness, escalation team) plus its web server on a
loopback port, and a cookie-keeping HTTP client that posts forms the way a browser without
JavaScript does (it reads the CSRF token from the page it was given)."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

from bot.domain.study import Study
from bot.services.enrolment import enroll
from bot.web.app import WebDiary
from bot.web.server import WebConfig
from tests.escalation_support import fast_harness, team
from tests.harness import Harness

PUBLIC = "https://diary.example-hospital.cn"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass
class WebHarness:
    h: Harness
    web: WebDiary

    @property
    def url(self) -> str:
        return f"http://{self.web.bound}"

    def local(self, link: str) -> str:
        """A personal link (PUBLIC_URL/p/…) as served on the loopback."""
        assert link.startswith(PUBLIC + "/p/"), link
        return self.url + link[len(PUBLIC) :]

    async def enroll(
        self,
        subject: str = "RP-101",
        *,
        birth_year: int = 1956,
        injection: date = date(2026, 12, 1),
        lang: str | None = "zh_Hans",
    ) -> str:
        result = await enroll(
            self.h.rt,
            subject,
            injection,
            lang,
            "Asia/Shanghai",
            self.h.study.default_prompt_time,
            channel="web",
            phone="+8613812345678",
            birth_year=birth_year,
        )
        assert result.link is not None
        return self.local(result.link)

    async def counts(self) -> dict[str, int]:
        """What is stored, to check that a refused request changed nothing."""
        out = {}
        for table in ("answers", "occurrences", "web_devices", "web_notices", "alerts"):
            rows = await self.h.rows(f"SELECT COUNT(*) AS n FROM {table}")
            out[table] = rows[0]["n"]
        rows = await self.h.rows("SELECT COUNT(*) AS n FROM occurrences WHERE status = 'completed'")
        out["completed"] = rows[0]["n"]
        rows = await self.h.rows("SELECT failures, locked_at FROM web_links ORDER BY id")
        out["failures"] = sum(r["failures"] for r in rows)
        return out


@contextlib.asynccontextmanager
async def web_harness(
    tmp_path: Path, study: Study, config: WebConfig | None = None
) -> AsyncIterator[WebHarness]:
    async with fast_harness(tmp_path, study) as h:
        await team(h)
        h.rt.public_url = PUBLIC
        web = WebDiary(h.rt, h.bot.diary, "127.0.0.1:0", config)
        await web.start()
        try:
            yield WebHarness(h, web)
        finally:
            await web.stop()


@dataclass
class Page:
    status: int
    url: str
    text: str

    @property
    def csrf(self) -> str:
        m = CSRF.search(self.text)
        assert m, f"no form on {self.url}: {self.plain[:300]}"
        return m.group(1)

    @property
    def plain(self) -> str:
        """The page's visible text, roughly (tags removed, entities decoded)."""
        body = self.text.split("<body>", 1)[-1]
        return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))).strip()

    def values(self, name: str = "do") -> list[str]:
        """The values of the submit buttons called `name`."""
        return [html.unescape(v) for v in re.findall(rf'name="{name}" value="([^"]*)"', self.text)]


@dataclass
class Browser:
    """A phone's browser without JavaScript: cookies, forms, redirects."""

    session: aiohttp.ClientSession
    last: Page | None = None
    history: list[Page] = field(default_factory=list)

    async def get(self, url: str) -> Page:
        async with self.session.get(url) as r:
            page = Page(r.status, str(r.url), await r.text())
        self.last = page
        self.history.append(page)
        return page

    async def post(self, url: str, data: dict[str, Any], *, csrf: bool = True) -> Page:
        form = dict(data)
        if csrf and "csrf" not in form:
            assert self.last is not None
            form["csrf"] = self.last.csrf
        async with self.session.post(url, data=form) as r:
            page = Page(r.status, str(r.url), await r.text())
        self.last = page
        self.history.append(page)
        return page


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        yield Browser(session)


async def fill(wh: WebHarness, b: Browser, link: str, answers: dict[str, str]) -> Page:
    """Answer today's diary through the forms (the question asked is read from the page's
    buttons and hidden fields), then submit. Returns the page after Submit."""
    page = await b.get(link)
    for _ in range(40):
        values = page.values()
        submit = [v for v in values if v.startswith("x:")]
        if submit:
            return await b.post(link + "/act", {"do": submit[0]})
        items = page.values("item")
        if items:
            code = items[0]
            occ = page.values("occ")[0]
            page = await b.post(link + "/act", {"occ": occ, "item": code, "text": answers[code]})
            continue
        first = next(v for v in values if v[:2] in ("a:", "t:"))
        code = first.split(":")[2]
        item = wh.h.study.item(code)
        occ = first.split(":")[1]
        if item.kind == "multi":
            for option in answers[code].split(","):
                page = await b.post(link + "/act", {"do": f"t:{occ}:{code}:{option}"})
            page = await b.post(link + "/act", {"do": f"n:{occ}:{code}"})
        else:
            page = await b.post(link + "/act", {"do": f"a:{occ}:{code}:{answers[code]}"})
        assert page.status == 200, page.plain
    raise AssertionError("the diary did not finish in 40 steps")
