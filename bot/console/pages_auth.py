"""Sign-in, the invitation (password, then TOTP) and sign-out pages."""

from __future__ import annotations

import io

import segno
from aiohttp import web

from bot.console import accounts
from bot.console.accounts import AccountError
from bot.console.messages import message
from bot.console.web import (
    ANON_CSRF_COOKIE,
    SESSION_COOKIE,
    console,
    locale_of,
    redirect,
    render,
    safe_next,
    secure_cookie,
    signed_in,
)
from bot.i18n import t

MAX_FIELD = 300


def _field(form: object, name: str) -> str:
    value = form.get(name, "") if hasattr(form, "get") else ""
    return str(value)[:MAX_FIELD]


async def login_page(request: web.Request) -> web.Response:
    target = safe_next(request, request.query.get("next", "")) or ""
    return render(request, "login.html", error=None, email="", next=target)


async def login(request: web.Request) -> web.StreamResponse:
    c = console(request)
    form = await request.post()
    email = _field(form, "email")
    try:
        done = await accounts.sign_in(
            c.rt, c.box, email, _field(form, "password"), _field(form, "code")
        )
    except AccountError as exc:
        error = message(t(locale_of(request)), exc.code)
        back = safe_next(request, _field(form, "next")) or ""
        return render(request, "login.html", status=401, error=error, email=email, next=back)
    target = safe_next(request, _field(form, "next"))
    response = (
        web.Response(status=303, headers={"Location": target})
        if target
        else redirect(request, "inbox")
    )
    # Session cookie: no Max-Age (ends with the browser), HttpOnly, SameSite=Strict.
    response.set_cookie(
        SESSION_COOKIE,
        done.cookie,
        httponly=True,
        secure=secure_cookie(request),
        samesite="Strict",
        path="/",
    )
    response.del_cookie(ANON_CSRF_COOKIE, path="/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    member = signed_in(request)
    everywhere = request.match_info.get("scope") == "everywhere"
    await accounts.sign_out(console(request).rt, member, everywhere=everywhere)
    response = redirect(request, "login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# --------------------------------------------------------------------------- invitation


async def invite_page(request: web.Request) -> web.Response:
    acc = await accounts.invited(console(request).rt, request.match_info["token"])
    if acc is None:
        return _invalid(request)
    return render(request, "invite.html", account=acc, error=None)


async def invite_password(request: web.Request) -> web.StreamResponse:
    c = console(request)
    token = request.match_info["token"]
    acc = await accounts.invited(c.rt, token)
    if acc is None:
        return _invalid(request)
    form = await request.post()
    password = str(form.get("password", ""))
    _ = t(locale_of(request))
    if password != str(form.get("password2", "")):
        error = message(_, "password_mismatch")
        return render(request, "invite.html", status=400, account=acc, error=error)
    try:
        secret = await accounts.set_password(c.rt, c.box, token, password)
    except AccountError as exc:
        error = message(_, exc.code)
        return render(request, "invite.html", status=400, account=acc, error=error)
    return _totp_page(request, acc.email or "", secret, error=None)


async def invite_totp(request: web.Request) -> web.StreamResponse:
    c = console(request)
    token = request.match_info["token"]
    acc = await accounts.invited(c.rt, token)
    if acc is None or acc.totp_secret is None:
        return _invalid(request)
    form = await request.post()
    try:
        await accounts.confirm_totp(c.rt, c.box, token, _field(form, "code"))
    except AccountError as exc:
        error = message(t(locale_of(request)), exc.code)
        secret = c.box.decrypt(acc.totp_secret)
        return _totp_page(request, acc.email or "", secret, error=error, status=400)
    return render(request, "ready.html")


def _totp_page(
    request: web.Request, email: str, secret: str, *, error: str | None, status: int = 200
) -> web.Response:
    uri = accounts.provisioning_uri(secret, email)
    svg = io.BytesIO()
    segno.make(uri, error="m").save(svg, kind="svg", scale=5, border=2, xmldecl=False)
    return render(
        request,
        "totp.html",
        status=status,
        qr=svg.getvalue().decode("utf-8"),
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        error=error,
        token=request.match_info["token"],
    )


def _invalid(request: web.Request) -> web.Response:
    text = message(t(locale_of(request)), "invite_invalid")
    return render(request, "message.html", status=404, title=text, text=text)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login)
    app.router.add_post("/logout/{scope:(here|everywhere)}", logout, name="logout")
    app.router.add_get("/invite/{token:[A-Za-z0-9_-]{20,60}}", invite_page, name="invite")
    app.router.add_post("/invite/{token:[A-Za-z0-9_-]{20,60}}", invite_password)
    app.router.add_post("/invite/{token:[A-Za-z0-9_-]{20,60}}/totp", invite_totp, name="totp")
