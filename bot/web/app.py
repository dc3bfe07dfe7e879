"""The web diary's root aiohttp application and its runner (`diarybot run`, the sandbox, tests).

    root app (security headers on every response, /static/)
      └── /p/      the patient's diary (bot/web/patient.py): CSRF, rate limits
      └── the staff's one-time alert links of SMS/WeCom/e-mail alerts (bot/channels/ack_web.py)
      └── /console/ the study team's console (bot/console/app.py)

Served by `diarybot run` when DIARYBOT_WEB=host:port is set, behind a reverse proxy that
terminates TLS (docs/deploy.md). This module is above everything it mounts; what the pages share
(keys, config, middlewares, rendering) is in bot/web/server.py, below both. Nothing here logs a
path: the personal token is in it.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bot.channels import ack_web
from bot.console.app import build as build_console
from bot.i18n import t
from bot.services.diary import DiaryService
from bot.services.runtime import Runtime
from bot.web import patient
from bot.web.server import (
    CONFIG_KEY,
    DIARY_KEY,
    ENV_KEY,
    HEADERS_KEY,
    LIMITS_KEY,
    LINK_COOKIE,
    OPEN_YOUR_LINK,
    RT_KEY,
    SECRET_KEY,
    TOKEN_RE,
    RateLimits,
    WebConfig,
    environments,
    parse_bind,
    phones,
    render,
    request_locale,
    security_headers,
    security_headers_for,
)
from storage import repo

STATIC = Path(__file__).resolve().parent / "static"


#: Every path whose next segment is a secret (a bearer token): the patient's personal link
#: (/p/), the staff's one-time alert link (/ack/, /console/ack/), the console's invitation
#: (/console/invite/). The segment is logged as "…".
SECRET_PATHS = re.compile(
    r"^(?P<prefix>/+(?:p|ack|console/+ack|console/+invite)/+)[^/]+",
    re.IGNORECASE,  # /P/<token> is no route, but the token in it is still the real one
)


def redact_path(path: str) -> str:
    """`/ack/<token>/x` → `/ack/…/x`; a path without a secret segment unchanged."""
    return SECRET_PATHS.sub(r"\g<prefix>…", path, count=1)


class QuietAccessLogger(AbstractAccessLogger):
    """Method, status and time; no token (personal link, alert link, invitation) is logged."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = redact_path(request.path)
        self.logger.debug("%s %s %s %.1f ms", request.method, path, response.status, time * 1000)


async def _load_secret(rt: Runtime) -> bytes:
    """The HMAC key for CSRF tokens: made once, kept in the database (survives restarts)."""
    value = await repo.meta_get(rt.db.conn, "web_secret")
    if value is None:
        async with rt.db.transaction() as conn:
            value = await repo.meta_get(conn, "web_secret")
            if value is None:
                value = secrets.token_hex(32)
                await repo.meta_set(conn, "web_secret", value)
    return bytes.fromhex(value)


async def build_app(
    rt: Runtime, diary: DiaryService, config: WebConfig | None = None
) -> web.Application:
    """The root application; mount further sub-apps (a staff console) with add_subapp."""
    config = config or WebConfig()
    app = web.Application(middlewares=[security_headers], client_max_size=config.max_body)
    app[RT_KEY] = rt
    app[DIARY_KEY] = diary
    app[CONFIG_KEY] = config
    app[HEADERS_KEY] = security_headers_for(config)
    app[SECRET_KEY] = await _load_secret(rt)
    app[ENV_KEY] = environments()
    app[LIMITS_KEY] = RateLimits(config)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/", root)
    app.add_subapp("/p/", patient.build())
    ack_web.add_routes(app, rt)  # staff: the one-time alert links of SMS/WeCom/e-mail alerts
    # The console's sign-in throttle counts the same client addresses (trusted proxies).
    app.add_subapp("/console/", build_console(rt, limits=app[LIMITS_KEY]))
    return app


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    types = {
        ".css": "text/css",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".js": "text/javascript",
    }
    response = web.Response(
        body=path.read_bytes(),  # a few KB, cached by the browser
        content_type=types.get(path.suffix, "application/octet-stream"),
    )
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


async def root(request: web.Request) -> web.StreamResponse:
    """PUBLIC_URL/ (the address in prompt SMS): on a phone that has opened its personal link,
    that diary; anywhere else, a page that says to open the personal link."""
    token = request.cookies.get(LINK_COOKIE, "")
    if TOKEN_RE.match(token):
        return web.Response(status=303, headers={"Location": f"/p/{token}"})
    rt: Runtime = request.config_dict[RT_KEY]
    locale = request_locale(request)
    _ = t(locale)
    return render(
        request,
        "message.html",
        locale,
        title="",
        lines=[_(OPEN_YOUR_LINK)],
        phones=phones(rt, _),
        nav=False,
    )


class WebDiary:
    """The web diary's HTTP server, started and stopped with the bot (`diarybot run`)."""

    def __init__(
        self, rt: Runtime, diary: DiaryService, bind: str, config: WebConfig | None = None
    ) -> None:
        self.rt, self.diary, self.config = rt, diary, config
        self.host, self.port = parse_bind(bind)
        self.runner: web.AppRunner | None = None
        self.bound = bind

    async def start(self) -> None:
        app = await build_app(self.rt, self.diary, self.config)
        self.runner = web.AppRunner(app, access_log_class=QuietAccessLogger)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        addresses = self.runner.addresses
        if addresses:
            host, port = addresses[0][:2]
            self.bound = f"{host}:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
