"""The web server behind a reverse proxy that is not on the loopback (Docker: the host's proxy
reaches the container from the bridge's gateway): X-Forwarded-For / -Proto count only from the
addresses in DIARYBOT_TRUSTED_PROXIES, the per-IP limits count the real client, and the access
log never holds a token (personal link, alert link, console invitation)."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bot.cli import main
from bot.domain.study import Study
from bot.web.app import SECRET_PATHS, redact_path
from bot.web.server import (
    CONFIG_KEY,
    LOOPBACK,
    WebConfig,
    client_ip,
    is_https,
    parse_trusted_proxies,
)
from tests.console_support import invite
from tests.web_support import web_harness

DOCKER_GATEWAY = "172.30.90.1"
# A second loopback address stands for the proxy in the tests over real sockets: the client
# binds to it, so the server sees a source other than 127.0.0.1.
PROXY = "127.0.0.2"


def request(
    remote: str,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    config: WebConfig | None = None,
) -> web.Request:
    app = web.Application()
    app[CONFIG_KEY] = config or WebConfig()
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (remote, 40000) if name == "peername" else default
    )
    return make_mocked_request("GET", "/p/x", headers=headers, app=app, transport=transport)


def trusting(text: str, per_ip: int = WebConfig.per_ip) -> WebConfig:
    return WebConfig(trusted_proxies=parse_trusted_proxies(text), per_ip=per_ip)


# ------------------------------------------------------------------ the setting
def test_trusted_proxies_are_parsed_with_ipaddress() -> None:
    nets = parse_trusted_proxies(" 172.30.90.1, 10.0.0.0/24 ,fd00::/8,")
    assert [str(n) for n in nets] == ["172.30.90.1/32", "10.0.0.0/24", "fd00::/8"]
    assert parse_trusted_proxies("") == LOOPBACK == WebConfig().trusted_proxies
    assert WebConfig.from_env({}).trusted_proxies == LOOPBACK
    assert WebConfig.from_env({"DIARYBOT_TRUSTED_PROXIES": "172.30.90.1"}).trusted_proxies == (
        parse_trusted_proxies("172.30.90.1")
    )
    for bad in ("172.30.90.1, not-an-ip", "10.0.0.0/33", "172.30.90.1 10.0.0.1"):
        with pytest.raises(ValueError) as info:
            parse_trusted_proxies(bad)
        message = str(info.value)
        assert message.startswith("DIARYBOT_TRUSTED_PROXIES: ") and "\n" not in message


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("DIARYBOT_DB", str(path))
    monkeypatch.chdir(tmp_path)
    return path


def test_run_refuses_a_bad_trusted_proxies_setting_in_one_line(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST")
    monkeypatch.setenv("DIARYBOT_WEB", "0.0.0.0:8090")
    monkeypatch.setenv("DIARYBOT_TRUSTED_PROXIES", "172.30.90.1,docker-gateway")
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "DIARYBOT_TRUSTED_PROXIES" in err and "'docker-gateway'" in err
    assert not db.exists()


# ------------------------------------------------------------------ client_ip / is_https
def test_a_trusted_proxy_off_the_loopback_gives_the_client_and_the_scheme() -> None:
    docker = trusting(DOCKER_GATEWAY)
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    r = request(DOCKER_GATEWAY, headers, docker)
    assert client_ip(r, docker) == "203.0.113.7"
    assert is_https(r, mock.Mock())
    # A dual-stack socket shows the gateway as ::ffff:172.30.90.1: the same proxy.
    r = request("::ffff:" + DOCKER_GATEWAY, headers, docker)
    assert client_ip(r, docker) == "203.0.113.7" and is_https(r, mock.Mock())
    # A network works as well as one address.
    bridge = trusting("172.16.0.0/12")
    assert client_ip(request(DOCKER_GATEWAY, headers, bridge), bridge) == "203.0.113.7"
    # Without the setting the bridge's address is not trusted (the gap on Docker until now).
    default = WebConfig()
    r = request(DOCKER_GATEWAY, headers, default)
    assert client_ip(r, default) == DOCKER_GATEWAY and not is_https(r, mock.Mock())


def test_the_client_written_part_of_x_forwarded_for_is_ignored() -> None:
    """Read from the right: the proxy appends the address it saw; what is left of it came
    from the client and may be forged. Further trusted proxies (a chain) are skipped."""
    chain = trusting(f"{DOCKER_GATEWAY}, 10.0.0.0/24")
    forged = {"X-Forwarded-For": "198.51.100.99, 203.0.113.7"}
    assert client_ip(request(DOCKER_GATEWAY, forged, chain), chain) == "203.0.113.7"
    through_two = {"X-Forwarded-For": "198.51.100.99, 203.0.113.7, 10.0.0.5"}
    assert client_ip(request(DOCKER_GATEWAY, through_two, chain), chain) == "203.0.113.7"
    two_headers = [("X-Forwarded-For", "198.51.100.99"), ("X-Forwarded-For", "203.0.113.7")]
    assert client_ip(request(DOCKER_GATEWAY, two_headers, chain), chain) == "203.0.113.7"
    # Garbage from the proxy: the proxy's own address counts, never the garbage.
    garbage = {"X-Forwarded-For": "203.0.113.7, unknown"}
    assert client_ip(request(DOCKER_GATEWAY, garbage, chain), chain) == DOCKER_GATEWAY
    # No header: the proxy's own address.
    assert client_ip(request(DOCKER_GATEWAY, {}, chain), chain) == DOCKER_GATEWAY


def test_an_untrusted_source_cannot_choose_its_address_or_scheme() -> None:
    docker = trusting(DOCKER_GATEWAY)
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    for remote in ("192.0.2.10", "127.0.0.1", "172.30.90.2"):
        r = request(remote, headers, docker)
        assert client_ip(r, docker) == remote
        assert not is_https(r, mock.Mock())


# ------------------------------------------------------------------ over real sockets
@contextlib.asynccontextmanager
async def client(source: str) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def get_status(session: aiohttp.ClientSession, url: str, forwarded: str) -> int:
    async with session.get(url, headers={"X-Forwarded-For": forwarded}) as r:
        await r.read()
        return r.status


async def test_rate_limit_counts_each_client_behind_a_trusted_proxy(
    tmp_path: Path, study: Study
) -> None:
    config = trusting(PROXY, per_ip=3)
    async with web_harness(tmp_path, study, config) as wh:
        url = wh.url + "/p/" + "A" * 24  # no such link: the limit is checked first anyway
        async with client(PROXY) as proxy:
            first = [await get_status(proxy, url, "203.0.113.7") for _ in range(4)]
            # Another patient behind the same proxy has a bucket of their own …
            second = [await get_status(proxy, url, "203.0.113.8") for _ in range(3)]
            # … and a forged entry left of the proxy's does not buy the first one a new one.
            forged = await get_status(proxy, url, "198.51.100.1, 203.0.113.7")
        assert first[:3] == [404] * 3 and first[3] == 429
        assert second == [404] * 3 and forged == 429
        # 127.0.0.1 is not a trusted proxy here: its header is ignored, it is one client.
        async with client("127.0.0.1") as direct:
            untrusted = [await get_status(direct, url, f"203.0.113.{50 + i}") for i in range(4)]
        assert untrusted[:3] == [404] * 3 and untrusted[3] == 429


async def test_cookies_are_secure_only_through_the_trusted_proxy(
    tmp_path: Path, study: Study
) -> None:
    async with web_harness(tmp_path, study, trusting(PROXY)) as wh:
        url = wh.url + "/console/login"
        https = {"X-Forwarded-Proto": "https"}
        async with client(PROXY) as proxy, proxy.get(url, headers=https) as r:
            assert r.cookies["diarybot_console_csrf"]["secure"]
        async with client("127.0.0.1") as direct, direct.get(url, headers=https) as r:
            assert not r.cookies["diarybot_console_csrf"]["secure"]


async def test_console_sign_in_throttle_is_per_client_behind_the_proxy(
    tmp_path: Path, study: Study
) -> None:
    async with web_harness(tmp_path, study, trusting(PROXY)) as wh, client(PROXY) as proxy:
        url = wh.url + "/console/login"

        async def post(forwarded: str) -> int:
            async with proxy.post(url, data={}, headers={"X-Forwarded-For": forwarded}) as r:
                return r.status

        one = [await post("203.0.113.7") for _ in range(21)]
        assert 429 not in one[:20] and one[20] == 429
        # The rest of the hospital can still sign in.
        assert await post("203.0.113.8") != 429


# ------------------------------------------------------------------ the access log
def sample_path(canonical: str, token: str) -> str:
    """`/p/{token:[A-Za-z0-9_-]{20,64}}/help` → `/p/<token>/help` (other variables: `1`)."""
    out, i = [], 0
    while i < len(canonical):
        if canonical[i] != "{":
            out.append(canonical[i])
            i += 1
            continue
        depth, j = 0, i
        while True:
            depth += {"{": 1, "}": -1}.get(canonical[j], 0)
            j += 1
            if depth == 0:
                break
        name = re.split(r"[:}]", canonical[i + 1 : j])[0]
        out.append(token if name == "token" else "1")
        i = j
    return "".join(out)


def token_routes(app: web.Application) -> list[str]:
    found = []
    for resource in app.router.resources():
        sub = getattr(resource, "_app", None)
        if isinstance(sub, web.Application):
            found += token_routes(sub)
        elif "{token" in resource.canonical:
            found.append(resource.canonical)
    return found


async def test_every_route_with_a_token_is_redacted(tmp_path: Path, study: Study) -> None:
    async with web_harness(tmp_path, study) as wh:
        assert wh.web.runner is not None
        routes = token_routes(wh.web.runner.app)
    secret = "SECRETsecretSECRETsecret"
    paths = [sample_path(r, secret) for r in routes]
    prefixes = {p.split(secret)[0] for p in paths}
    assert prefixes == {"/p/", "/ack/", "/console/ack/", "/console/invite/"}
    for path in paths:
        assert SECRET_PATHS.match(path) and secret not in redact_path(path), path
    assert redact_path("/p/" + secret + "/help") == "/p/…/help"
    assert redact_path("/console/patients/RP-101") == "/console/patients/RP-101"


async def test_the_access_log_never_holds_a_token(
    tmp_path: Path, study: Study, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # `diarybot run` keeps aiohttp.access at WARNING (bot/ops/logs.py); a site that turns it on
    # for debugging must still see no token.
    caplog.set_level(logging.DEBUG, logger="aiohttp.access")
    async with web_harness(tmp_path, study) as wh:
        link = await wh.enroll()
        patient_token = link.rsplit("/", 1)[1]
        invite_token = await invite(wh.h, "x@example.org", "coordinator")
        ack_token = "eyJhIjoxLCJuIjoiWFhYWFhYWFhYIiwieCI6MX0.c2lnbmF0dXJlc2lnbmF0dXJlc2ln"
        tokens = [patient_token, invite_token, ack_token]
        gets = [
            link,
            link + "/help",
            f"{wh.url}/ack/{ack_token}",
            f"{wh.url}/console/ack/{ack_token}",
            f"{wh.url}/console/invite/{invite_token}",
            f"{wh.url}//p/{patient_token}",
            f"{wh.url}/P/{patient_token}",
        ]
        posts = [f"{wh.url}/ack/{ack_token}", f"{wh.url}/console/invite/{invite_token}/totp"]
        async with aiohttp.ClientSession() as session:
            for url in gets:
                async with session.get(url, allow_redirects=False) as r:
                    await r.read()
            for url in posts:
                async with session.post(url, data={"csrf": "x"}, allow_redirects=False) as r:
                    await r.read()
        await wh.web.stop()  # every request's access line is written by now
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) == len(gets) + len(posts), access
    assert any(line.startswith("GET /p/… ") for line in access)
    assert any(line.startswith("GET /p/…/help ") for line in access)
    assert any(line.startswith("GET /ack/… ") for line in access)
    assert any(line.startswith("POST /ack/… ") for line in access)
    assert any(line.startswith("GET /console/ack/… ") for line in access)
    assert any(line.startswith("GET /console/invite/… ") for line in access)
    assert any(line.startswith("POST /console/invite/…/totp ") for line in access)
    # Every record of the server and the bot, at any level, and every other logger's at INFO
    # and above (`diarybot run` logs at INFO; aiosqlite's DEBUG tracing echoes SQL parameters).
    checked = [
        r for r in caplog.records if r.name.startswith(("aiohttp", "bot")) or r.levelno >= 20
    ]
    assert len(checked) > len(access)
    for record in checked:
        text = record.getMessage() + repr(record.args)
        assert not any(token in text for token in tokens), (record.name, text)
