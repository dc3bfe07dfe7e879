"""The staff console as an aiohttp application: security middlewares, sessions, rendering.

Small and explicit on purpose (Starlette's and Flask's lessons without their weight): one
middleware sets the security headers, one finds the signed-in member, one checks the CSRF token
of every POST; pages are Jinja2 templates with autoescaping, texts from the gettext catalogs.

Mounted by the web server under `/console/` (`bot.console.app.build(rt)` returns a
sub-application), or run on its own in tests. The pages (bot/console/pages_*.py) import this
module; the app that adds their routes is above both, in bot/console/app.py.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jinja2
from aiohttp import web

from bot.console.accounts import Current, current
from bot.console.keys import SecretBox
from bot.escalation import permissions
from bot.i18n import LOCALES, t
from bot.services.runtime import Runtime
from bot.web.server import CONFIG_KEY, RateLimits, client_ip, is_https
from storage import audit

SESSION_COOKIE = "diarybot_console"
ANON_CSRF_COOKIE = "diarybot_console_csrf"
MAX_BODY = 64 * 1024

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Console:
    rt: Runtime
    box: SecretBox
    templates: jinja2.Environment
    secure_cookies: bool | None  # None: Secure exactly when the request came over HTTPS
    limits: RateLimits


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
WHO: web.RequestKey[Current | None] = web.RequestKey("who", object)  # type: ignore[arg-type]
NEW_ANON_CSRF: web.RequestKey[str] = web.RequestKey("new_anon_csrf", str)


def console(request: web.Request) -> Console:
    return request.config_dict[CONSOLE]


def secure_cookie(request: web.Request) -> bool:
    fixed = console(request).secure_cookies
    if fixed is not None:
        return fixed
    if CONFIG_KEY in request.config_dict:
        return is_https(request, console(request).rt)
    return request.secure


def who(request: web.Request) -> Current | None:
    return request.get(WHO)


def locale_of(request: web.Request) -> str:
    signed_in = who(request)
    if signed_in is not None:
        return signed_in.account.lang
    chosen = request.query.get("lang") or request.cookies.get("diarybot_console_lang")
    if chosen in LOCALES:
        return str(chosen)
    header = request.headers.get("Accept-Language", "")
    return "zh_Hans" if header.lower().startswith("zh") else "en"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and refusals raised by the pages
        _secure(exc.headers)
        raise
    _secure(response.headers)
    return response


def _secure(headers: Any) -> None:
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers.setdefault("Cache-Control", "no-store")


def redirect(request: web.Request, name: str, **parts: str) -> web.Response:
    """303 See Other to a named page (POST-redirect-GET)."""
    location = str(request.app.router[name].url_for(**parts))
    return web.Response(status=303, headers={"Location": location})


# Forms that take a password or a code, per client IP and rolling minute: on top of the
# per-account lockout, so guessing across many accounts from one place is slowed down too.
POSTS_PER_MINUTE = 20


@web.middleware
async def throttle(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "POST":
        c = console(request)
        if not c.limits.allow("console:" + client_ip(request, c.limits.config), POSTS_PER_MINUTE):
            response = await refuse(request, "too_many", status=429)
            response.headers["Retry-After"] = str(int(c.limits.config.window))
            return response
    return await handler(request)


@web.middleware
async def session(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[WHO] = await current(console(request).rt, request.cookies.get(SESSION_COOKIE))
    return await handler(request)


def csrf_token(request: web.Request) -> str:
    signed_in = who(request)
    if signed_in is not None:
        return signed_in.csrf
    token = request.cookies.get(ANON_CSRF_COOKIE) or request.get(NEW_ANON_CSRF)
    if not token:
        token = secrets.token_urlsafe(24)
        request[NEW_ANON_CSRF] = token
    return token


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every POST carries the form's token: the session's when signed in, otherwise a random
    cookie repeated in the form (double submit). A cross-site form can send neither."""
    if request.method == "POST":
        if request.content_length is not None and request.content_length > MAX_BODY:
            return await refuse(request, "too_large", status=413)
        form = await request.post()
        sent = str(form.get("csrf", ""))
        signed_in = who(request)
        expected = signed_in.csrf if signed_in else request.cookies.get(ANON_CSRF_COOKIE, "")
        if not sent or not expected or not hmac.compare_digest(sent, expected):
            rt = console(request).rt
            async with rt.db.transaction() as conn:
                await audit.record(
                    conn,
                    rt.now(),
                    f"staff:{signed_in.account.staff_id}" if signed_in else "system",
                    "console_csrf_refused",
                    entity=request.path[:100],
                )
            return await refuse(request, "csrf", status=403)
    response = await handler(request)
    new = request.get(NEW_ANON_CSRF)
    if new:
        response.set_cookie(
            ANON_CSRF_COOKIE,
            new,
            httponly=True,
            secure=secure_cookie(request),
            samesite="Strict",
            path="/",
        )
    return response


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    from bot.console.messages import role_label

    locale = locale_of(request)
    _ = t(locale)
    page = console(request).templates.get_template(template)
    html = page.render(
        _=_,
        url=lambda name, **parts: str(request.app.router[name].url_for(**parts)),
        role_label=lambda role: role_label(_, role),
        lang="zh-Hans" if locale == "zh_Hans" else "en",
        who=who(request),
        csrf=csrf_token(request),
        can=lambda action: can(request, action),
        **context,
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


async def refuse(request: web.Request, code: str, *, status: int) -> web.Response:
    from bot.console.messages import message

    text = message(t(locale_of(request)), code)
    return render(request, "message.html", status=status, title=text, text=text)


def can(request: web.Request, action: str) -> bool:
    signed_in = who(request)
    return signed_in is not None and permissions.allowed(signed_in.account.role, action)


def signed_in(request: web.Request) -> Current:
    """The member, or a redirect to the sign-in page."""
    member = who(request)
    if member is None:
        login = request.app.router["login"].url_for()
        if request.method == "GET":  # back to this page after signing in
            login = login.with_query(next=request.path_qs)
        raise web.HTTPSeeOther(str(login))
    return member


def safe_next(request: web.Request, target: str) -> str | None:
    """A page of this console to return to after signing in, or None (never another site)."""
    root = str(request.app.router["inbox"].url_for())
    lowered = target.lower()
    if (
        target.startswith(root)
        and _NEXT_CHARS.fullmatch(target)
        and "//" not in target
        and "/." not in target  # no dot segment climbs out of the console
        and not any(code in lowered for code in ("%2e", "%2f", "%5c"))  # nor an encoded one
        and len(target) < 200
    ):
        return target
    return None


# A same-site relative path (and query) only: no scheme, no host, no backslash, no whitespace.
_NEXT_CHARS = re.compile(r"/[A-Za-z0-9._~/?&=%+:,;@-]*")


async def require(request: web.Request, action: str) -> Current:
    """The member allowed to do `action`; otherwise 403, audited (buttons are hidden too, but
    a hand-made POST must be refused on its own)."""
    member = signed_in(request)
    if not permissions.allowed(member.account.role, action):
        rt = console(request).rt
        async with rt.db.transaction() as conn:
            await audit.record(
                conn,
                rt.now(),
                f"staff:{member.account.staff_id}",
                "console_refused",
                entity=request.path[:100],
                new={"role": member.account.role, "action": action},
            )
        raise web.HTTPForbidden(
            text=(await refuse(request, "forbidden", status=403)).text, content_type="text/html"
        )
    return member


def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
