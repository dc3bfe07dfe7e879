"""What the web diary's pages share: configuration, app keys, rate limits, middlewares, rendering.

The root app (security headers on every response, /static/, /p/ the patient's diary, /console/
the study team's console) and its runner are above this module, in bot/web/app.py: the pages
(bot/web/patient.py, bot/console/web.py) import this module, the app imports the pages.
Nothing here logs a path: the personal token is in it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from jinja2 import Environment, PackageLoader, select_autoescape

from bot.i18n import LOCALES, N_, T, locale_for, t
from bot.services.diary import DiaryService
from bot.services.runtime import Runtime

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The personal link is in the address: never send it to another site as a referrer.
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
LOOPBACK_ORIGIN = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\]):[0-9]{1,5}$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Whose X-Forwarded-For / X-Forwarded-Proto count when DIARYBOT_TRUSTED_PROXIES is not set:
#: a reverse proxy on this machine's loopback.
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
TRUSTED_PROXIES_ENV = "DIARYBOT_TRUSTED_PROXIES"


def parse_trusted_proxies(text: str) -> tuple[Network, ...]:
    """DIARYBOT_TRUSTED_PROXIES: IP addresses and networks separated by commas
    (`172.30.90.1, 10.0.0.0/24, fd00::/8`). Empty: the loopback. Raises ValueError naming the
    bad entry."""
    entries = [part.strip() for part in text.split(",") if part.strip()]
    if not entries:
        return LOOPBACK
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{TRUSTED_PROXIES_ENV}: {entry!r} is not an IP address or network "
                "(expected e.g. 172.30.90.1 or 10.0.0.0/24, separated by commas)"
            ) from None
    return tuple(networks)


def security_headers_for(config: WebConfig) -> dict[str, str]:
    """The headers every page carries; framing only by `config.frame_ancestors` (the sandbox)."""
    if not config.frame_ancestors:
        return SECURITY_HEADERS
    headers = {k: v for k, v in SECURITY_HEADERS.items() if k != "X-Frame-Options"}
    headers["Content-Security-Policy"] = CSP.replace(
        "frame-ancestors 'none'", "frame-ancestors " + " ".join(config.frame_ancestors)
    )
    return headers


NO_LINK = N_("This link does not work. Please check it, or call your study team.")
OPEN_YOUR_LINK = N_(
    "Please open your personal diary link: the one in the first text message from your study "
    "team, or the QR code they gave you."
)
# On a phone that passed the year-of-birth check: its personal link's token, so that
# PUBLIC_URL/ (the address prompt SMS carry) opens that diary. Path "/", HttpOnly.
LINK_COOKIE = "lk"
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
SEED_COOKIE = "ds"  # the browser's random CSRF seed (the form's token is its HMAC)
CSRF_KEY = web.RequestKey("csrf", str)  # this request's form token

RT_KEY = web.AppKey("rt", Runtime)
DIARY_KEY = web.AppKey("diary", DiaryService)
SECRET_KEY = web.AppKey("secret", bytes)
ENV_KEY = web.AppKey("jinja", dict)


@dataclass(frozen=True)
class WebConfig:
    """Limits, per rolling window of `window` seconds (token buckets, refilled continuously)."""

    per_ip: int = 300  # requests per IP address (a clinic's Wi-Fi shares one)
    per_link: int = 60  # requests per personal link
    window: float = 60.0
    max_body: int = 128 * 1024  # a 5,000-character answer fits; anything much larger does not
    #: X-Forwarded-For/-Proto count only from these addresses (the reverse proxy's):
    #: DIARYBOT_TRUSTED_PROXIES, by default the loopback. Empty: never.
    trusted_proxies: tuple[Network, ...] = LOOPBACK
    #: The local sandbox only (bot/sandbox): the page origins allowed to show the diary in a
    #: frame. Empty (always, in `diarybot run`): no page may frame it (frame-ancestors 'none',
    #: X-Frame-Options DENY). Only loopback http origins are accepted.
    frame_ancestors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for origin in self.frame_ancestors:
            if not LOOPBACK_ORIGIN.match(origin):
                raise ValueError(
                    f"frame_ancestors: only loopback origins (http://127.0.0.1:PORT), "
                    f"not {origin!r}"
                )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> WebConfig:
        """The settings `diarybot run` takes from the environment (DIARYBOT_TRUSTED_PROXIES).
        Raises ValueError with a one-line message."""
        e = os.environ if env is None else env
        return cls(trusted_proxies=parse_trusted_proxies(e.get(TRUSTED_PROXIES_ENV, "")))


class Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class RateLimits:
    """In-memory token buckets per IP and per link (one process serves the study)."""

    MAX_KEYS = 20000

    def __init__(self, config: WebConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}

    def allow(self, key: str, capacity: int) -> bool:
        now = self.clock()
        rate = capacity / self.config.window
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) >= self.MAX_KEYS:
                self._prune(now)
            b = self.buckets[key] = Bucket(float(capacity), now)
        b.tokens = min(float(capacity), b.tokens + (now - b.at) * rate)
        b.at = now
        if b.tokens < 1:
            return False
        b.tokens -= 1
        return True

    def _prune(self, now: float) -> None:
        full = [k for k, b in self.buckets.items() if now - b.at > self.config.window]
        for k in full or list(self.buckets)[: self.MAX_KEYS // 2]:
            del self.buckets[k]


CONFIG_KEY = web.AppKey("config", WebConfig)
HEADERS_KEY = web.AppKey("headers", dict)
LIMITS_KEY = web.AppKey("limits", RateLimits)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:172.30.90.1 on a dual-stack socket
    return ip


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, config: WebConfig) -> bool:
    return ip is not None and any(ip in net for net in config.trusted_proxies)


def client_ip(request: web.Request, config: WebConfig) -> str:
    """The patient's (or staff member's) address, for the per-IP rate limits.

    The connection's address, unless it is a trusted proxy (`config.trusted_proxies`): then
    X-Forwarded-For, read from the right, skipping further trusted proxies; the first address
    not trusted is the client. Entries left of it were written by the client and are ignored.
    """
    remote = request.remote or "?"
    ip = _address(remote)
    if not _trusted(ip, config):
        return remote
    hops = [hop.strip() for hop in request.headers.getall("X-Forwarded-For", [])]
    chain = [part.strip() for hop in hops for part in hop.split(",")]
    for entry in reversed(chain):
        hop = _address(entry)
        if hop is None:  # garbage from the proxy: count the proxy itself
            break
        ip = hop
        if not _trusted(hop, config):
            break
    return str(ip)


def is_https(request: web.Request, rt: Runtime) -> bool:
    """Served over HTTPS: directly, or by a trusted reverse proxy (X-Forwarded-Proto).
    Cookies are then Secure; on plain HTTP (tests, a LAN trial) they could not be."""
    if request.secure:
        return True
    config: WebConfig = request.config_dict[CONFIG_KEY]
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" and _trusted(_address(request.remote or ""), config)


def environments() -> dict[str, Environment]:
    """One Jinja2 environment per locale: autoescaping, `_` bound to that locale's catalog."""
    envs = {}
    for locale in LOCALES:
        env = Environment(
            loader=PackageLoader("bot.web", "templates"),
            autoescape=select_autoescape(["html"]),
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # packaged templates do not change while running: no stat per page
        )
        tr = t(locale)
        env.install_gettext_callables(  # type: ignore[attr-defined]
            tr, tr.n, newstyle=False
        )
        for name in env.list_templates():  # compiled now (≈ 0.1 s), not by the first pages
            env.get_template(name)
        envs[locale] = env
    return envs


def render(
    request: web.Request, template: str, locale: str, status: int = 200, **context: Any
) -> web.Response:
    env: dict[str, Environment] = request.config_dict[ENV_KEY]
    html = (
        env[locale]
        .get_template(template)
        .render(
            lang="zh-Hans" if locale == "zh_Hans" else "en",
            csrf=request.get(CSRF_KEY, ""),
            **context,
        )
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def message_page(
    request: web.Request, locale: str, lines: list[str], *, status: int = 200, call: bool = True
) -> web.Response:
    """A page of a few lines (a refusal, an error) with no navigation; `call`: the study
    team's and the emergency phone buttons below it."""
    rt: Runtime = request.config_dict[RT_KEY]
    return render(
        request,
        "message.html",
        locale,
        status=status,
        title="",
        lines=lines,
        phones=phones(rt, t(locale)) if call else [],
        nav=False,
    )


def request_locale(request: web.Request) -> str:
    return locale_for(request.headers.get("Accept-Language", "zh").split(",")[0])


# ------------------------------------------------------------------ middlewares
@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status == 404:
            response = _plain_page(request, 404)
        elif exc.status == 413:
            response = _plain_page(request, 413)
        else:
            raise
    for name, value in request.config_dict[HEADERS_KEY].items():
        response.headers.setdefault(name, value)  # a page's own policy wins (bot/channels/ack_web)
    if request.path.startswith("/p/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _plain_page(request: web.Request, status: int) -> web.Response:
    locale = request_locale(request)
    _ = t(locale)
    rt: Runtime = request.config_dict[RT_KEY]
    if status == 413:
        text = _(
            "That is too long: please keep it under {max} characters.", max=rt.study.max_free_text
        )
    else:
        text = _(NO_LINK)
    return message_page(request, locale, [text], status=status)


def phones(rt: Runtime, _: T) -> list[tuple[str, str]]:
    """(label, tel: URI) of the study team's phone and the emergency number."""
    study = rt.study
    return [
        (_("Call the study team: {phone}", phone=study.contact_phone), tel(study.contact_phone)),
        (_("Emergency: call {number}", number=study.emergency_number), tel(study.emergency_number)),
    ]


def tel(number: str) -> str:
    return "tel:" + "".join(ch for ch in number if ch.isdigit() or ch == "+")


def sign(secret: bytes, seed: str) -> str:
    return hmac.new(secret, b"csrf:" + seed.encode("ascii", "replace"), hashlib.sha256).hexdigest()


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Signed double submit: every form carries HMAC(secret, the browser's seed cookie)."""
    secret: bytes = request.config_dict[SECRET_KEY]
    seed = request.cookies.get(SEED_COOKIE, "")
    fresh = not (
        16 <= len(seed) <= 64
        and seed.isascii()
        and seed.replace("_", "").replace("-", "").isalnum()
    )
    if fresh:
        seed = secrets.token_urlsafe(24)
    request[CSRF_KEY] = sign(secret, seed)
    if request.method == "POST":
        form = await request.post()
        sent = form.get("csrf")
        if fresh or not isinstance(sent, str) or not hmac.compare_digest(sent, request[CSRF_KEY]):
            locale = request_locale(request)
            _ = t(locale)
            log.warning("web: a form without a valid CSRF token was refused")
            response: web.StreamResponse = message_page(
                request,
                locale,
                [_("This page had expired, so nothing was saved. Please open your link again.")],
                status=403,
            )
            _set_seed(request, response, seed, fresh)
            return response
    response = await handler(request)
    _set_seed(request, response, seed, fresh)
    return response


def _set_seed(request: web.Request, response: web.StreamResponse, seed: str, fresh: bool) -> None:
    if fresh:
        rt: Runtime = request.config_dict[RT_KEY]
        response.set_cookie(
            SEED_COOKIE,
            seed,
            path="/p/",
            httponly=True,
            samesite="Lax",
            secure=is_https(request, rt),
        )


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    limits: RateLimits = request.config_dict[LIMITS_KEY]
    config = limits.config
    token = request.match_info.get("token", "")
    ok = limits.allow("ip:" + client_ip(request, config), config.per_ip)
    if ok and token:
        ok = limits.allow(
            "link:" + hashlib.sha256(token.encode()).hexdigest()[:32], config.per_link
        )
    if not ok:
        locale = request_locale(request)
        _ = t(locale)
        response = message_page(
            request,
            locale,
            [_("Too many requests. Please wait a minute and try again.")],
            status=429,
            call=False,
        )
        response.headers["Retry-After"] = str(int(config.window))
        return response
    return await handler(request)


# ------------------------------------------------------------------ serving
def parse_bind(bind: str) -> tuple[str, int]:
    """DIARYBOT_WEB: `host:port` (IPv6 as `[::1]:8090`). Raises ValueError."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"DIARYBOT_WEB must be host:port, e.g. 127.0.0.1:8090 (not {bind!r})")
    return host.strip("[]"), int(port)


Page = Callable[[web.Request], Awaitable[web.StreamResponse]]
