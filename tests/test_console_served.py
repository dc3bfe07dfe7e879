"""The console served by the web diary's own server (`DIARYBOT_WEB`), under /console/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.domain.study import Study
from tests.console_support import PASSWORD, accept_invite, code_at, invite
from tests.web_support import browser, web_harness


async def test_console_is_mounted_beside_the_web_diary_with_its_own_policy(
    tmp_path: Path, study: Study
) -> None:
    async with web_harness(tmp_path, study) as wh, browser() as b:
        base = f"http://{wh.web.bound}"
        async with b.session.get(f"{base}/console/login") as r:
            assert r.status == 200
            assert "script-src" not in r.headers["Content-Security-Policy"]
            assert "Sign in" in await r.text() or "登录" in await r.text()
        async with b.session.get(f"{base}/") as r:  # the patients' side is still there
            assert r.status == 200


async def test_sign_in_posts_are_throttled_per_address(tmp_path: Path, study: Study) -> None:
    async with web_harness(tmp_path, study) as wh, browser() as b:
        h = wh.h
        base = f"http://{wh.web.bound}/console"
        token = await invite(h, "x@example.org", "coordinator")

        class Client:  # accept_invite's client interface over the real server
            async def get(self, path: str, **kw: Any) -> Any:
                return await b.session.get(base + path.removeprefix("/console"), **kw)

            async def post(self, path: str, **kw: Any) -> Any:
                return await b.session.post(base + path.removeprefix("/console"), **kw)

        secret = await accept_invite(h, Client(), token)  # type: ignore[arg-type]
        statuses = []
        for _ in range(25):
            page = await b.session.get(f"{base}/login")
            csrf = (await page.text()).split('name="csrf" value="')[1].split('"')[0]
            resp = await b.session.post(
                f"{base}/login",
                data={"csrf": csrf, "email": "nobody@example.org", "password": "x", "code": "1"},
                allow_redirects=False,
            )
            statuses.append(resp.status)
        assert statuses[:15] == [401] * 15 and statuses[-1] == 429
        # The member's own account was never touched: no failed count, not locked.
        [row] = await h.rows(
            "SELECT failed_logins, locked_at FROM staff WHERE email = 'x@example.org'"
        )
        assert (row["failed_logins"], row["locked_at"]) == (0, None)
        assert secret and code_at(h, secret) and PASSWORD


async def test_console_cookies_are_secure_behind_the_tls_proxy(
    tmp_path: Path, study: Study
) -> None:
    async with web_harness(tmp_path, study) as wh, browser() as b:
        url = f"http://{wh.web.bound}/console/login"
        async with b.session.get(url, headers={"X-Forwarded-Proto": "https"}) as r:
            cookie = r.cookies["diarybot_console_csrf"]
            assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
        async with b.session.get(url) as r:  # plain HTTP on the loopback (no proxy): not Secure
            assert not r.cookies["diarybot_console_csrf"]["secure"]
