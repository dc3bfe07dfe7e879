"""The sandbox page: static files plus a small JSON API over `Sandbox`.

The page polls `GET /api/state` for the chats it shows and posts what the person does (type,
tap, move the clock, enrol, switch language). Every handler is a thin call into `Sandbox`, which
goes through the real bot. Served on loopback only: the sandbox has no accounts, so it must not
be reachable from other machines.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date, time, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.domain.study import parse_hhmm
from bot.i18n import parse_lang
from bot.sandbox import chatview, queries, replies
from bot.sandbox.screens import other_texts, providers, render_all
from bot.sandbox.world import Sandbox, SandboxError
from bot.services.enrolment import EnrolError

SANDBOX_KEY = web.AppKey("sandbox", Sandbox)
SCREENS_KEY = web.AppKey("screens", list)
SCREENS_LOCK = web.AppKey("screens_lock", asyncio.Lock)
STATIC = resources.files("bot.sandbox") / "static"
MAX_TEXT = 4096
URL = re.compile(r"https?://[A-Za-z0-9._~:/?#@!$&*+,;=%-]+")


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SandboxError(f"{name} must be a number")
    try:
        return int(value)
    except ValueError:
        raise SandboxError(f"{name} must be a number") from None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise SandboxError("expected a JSON body") from None
    if not isinstance(body, dict):
        raise SandboxError("expected a JSON object")
    return body


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuse cross-site posts (another site open in the same browser) and turn refusals into
    400 answers the page shows."""
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return web.json_response({"error": "cross-site request refused"}, status=403)
        if not request.app[SANDBOX_KEY].ready:
            return web.json_response(
                {"error": "the demo study is still being prepared"}, status=503
            )
    try:
        return await handler(request)
    except (SandboxError, EnrolError) as exc:
        return _bad(str(exc))


def _person(sb: Sandbox, value: Any) -> int:
    user_id = _int(value, "user_id")
    if user_id not in sb.names:
        raise SandboxError("unknown person")
    return user_id


# ------------------------------------------------------------------ pages
async def index(request: web.Request) -> web.Response:
    return web.Response(
        text=(STATIC / "index.html").read_text(encoding="utf-8"), content_type="text/html"
    )


async def screens_page(request: web.Request) -> web.Response:
    return web.Response(
        text=(STATIC / "screens.html").read_text(encoding="utf-8"), content_type="text/html"
    )


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    types = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
    suffix = name[name.rfind(".") :] if "." in name else ""
    entry = STATIC / name
    if "/" in name or suffix not in types or not entry.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        text=entry.read_text(encoding="utf-8"),
        content_type=types[suffix],
        headers={"Cache-Control": "no-cache"},
    )


# ------------------------------------------------------------------ reading
async def state(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX_KEY]
    db = sb.bot.rt.db
    tz_name = sb.study.timezone
    tz = ZoneInfo(tz_name)
    local = sb.now.astimezone(tz)
    due = await queries.next_prompt(db, sb.now)
    patients = []
    for p in await queries.patients(db, sb.now):
        invite = sb.invites.get(p.subject)
        user_id = p.user_id if p.user_id is not None else (invite.user_id if invite else None)
        patients.append(
            {
                "subject": p.subject,
                "status": p.status,
                "lang": p.lang,
                "client_lang": sb.clients.get(user_id) if user_id else None,
                "user_id": user_id,
                "study_day": p.study_day,
                "prompt_time": p.prompt_time,
                "code": invite.code if invite and p.status == "invited" else None,
                "channel": p.channel,
                "phone": p.phone,
                "birth_year": p.birth_year,
            }
        )
    staff = [
        {"user_id": s.telegram_id, "role": s.role, "name": s.name, "lang": s.lang}
        for s in await queries.staff(db)
    ]
    chats: dict[str, Any] = {}
    toasts: dict[str, Any] = {}
    for key in ("patient", "staff"):
        raw = request.query.get(key)
        if not raw:
            continue
        try:
            chat_id = int(raw)
        except ValueError:
            return _bad(f"{key} must be a number")
        chats[raw] = chatview.chat_messages(sb.api, chat_id, tz_name)
        toasts[raw] = chatview.toasts(sb.api, sb.toast_owner, chat_id)
    return web.json_response(
        {
            "now": sb.now.isoformat(),
            "now_local": local.strftime("%Y-%m-%d %H:%M"),
            "weekday": local.isoweekday(),
            "timezone": tz_name,
            "next": None
            if due is None
            else {
                "at_local": due.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                "kind": due.kind,
                "subject": due.subject,
            },
            "busy": sb.busy,
            "ready": sb.ready,
            "patients": patients,
            "staff": staff,
            "group": await queries.staff_group(db),
            "web_port": sb.web_port,
            "chats": chats,
            "toasts": toasts,
        },
        dumps=lambda obj: json.dumps(obj, ensure_ascii=False),
    )


def sms_links(text: str) -> list[dict[str, str]]:
    """The web-diary addresses in an SMS, each with the path the phone frame opens: the
    sandbox's own web diary serves it (in a study, DIARYBOT_PUBLIC_URL is a proxy to it)."""
    out = []
    for match in URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        out.append({"url": url, "path": path})
    return out


async def sms(request: web.Request) -> web.Response:
    """A web patient's phone: the SMS the bot sent to it, oldest first (study time)."""
    sb = request.app[SANDBOX_KEY]
    subject = request.query.get("subject", "")
    patient = next(
        (p for p in await queries.patients(sb.bot.rt.db, sb.now) if p.subject == subject), None
    )
    if patient is None or patient.channel != "web" or patient.phone is None:
        raise SandboxError("no such web patient")
    tz = ZoneInfo(sb.study.timezone)
    messages = [
        {
            "at": m.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            "text": m.text,
            "purpose": m.purpose,
            "links": sms_links(m.text),
        }
        for m in sb.sms.to(patient.phone)
    ]
    return web.json_response(
        {
            "subject": patient.subject,
            "phone": patient.phone,
            "birth_year": patient.birth_year,
            "web_port": sb.web_port,
            "messages": messages,
        },
        dumps=lambda obj: json.dumps(obj, ensure_ascii=False),
    )


async def file(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX_KEY]
    stored = sb.api.state.files.get(request.match_info["file_id"])
    if stored is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=stored.content,
        content_type=stored.mime_type or "application/octet-stream",
        headers={"Content-Disposition": f'inline; filename="{stored.file_name}"'},
    )


async def screens(request: web.Request) -> web.Response:
    """Every screen, then the catalog entries none of them shows; drawn (and the handlers'
    replies captured) on the first request only."""
    cached = request.app[SCREENS_KEY]
    async with request.app[SCREENS_LOCK]:
        if not cached:
            study = request.app[SANDBOX_KEY].study
            captured = await replies.capture(study)
            drawn = render_all(study, only=[*providers(), captured])
            cached.extend([*drawn, *other_texts(drawn)])
    return web.json_response(
        {"screens": cached}, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
    )


# ------------------------------------------------------------------ acting
async def send(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX_KEY]
    body = await _body(request)
    user_id = _person(sb, body.get("user_id"))
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise SandboxError("type a message first")
    if len(text) > MAX_TEXT:
        raise SandboxError(f"a Telegram message has at most {MAX_TEXT} characters")
    await sb.send_text(user_id, text)
    return web.json_response({"ok": True})


async def press(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX_KEY]
    body = await _body(request)
    user_id = _person(sb, body.get("user_id"))
    message_id = _int(body.get("message_id"), "message_id")
    data = body.get("data")
    if not isinstance(data, str) or not data:
        raise SandboxError("no button data")
    query_id = await sb.press(user_id, message_id, data)
    return web.json_response({"ok": True, "query_id": query_id})


async def clock(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX_KEY]
    body = await _body(request)
    action = body.get("action")
    if action == "hour":
        await sb.advance(timedelta(hours=1))
    elif action == "day":
        await sb.advance(timedelta(days=1))
    elif action == "next":
        if await sb.to_next_prompt() is None:
            raise SandboxError("no prompt is planned")
    else:
        raise SandboxError("unknown clock action")
    return web.json_response({"ok": True, "now": sb.now.isoformat()})


async def enrol(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX_KEY]
    body = await _body(request)
    subject = str(body.get("subject") or "").strip()
    if not subject:
        raise SandboxError("subject ID is required")
    try:
        injection = date.fromisoformat(str(body.get("injection_date") or ""))
    except ValueError:
        raise SandboxError("injection date: expected YYYY-MM-DD") from None
    raw_lang = str(body.get("lang") or "ask")
    lang = None if raw_lang == "ask" else parse_lang(raw_lang)
    if raw_lang != "ask" and lang is None:
        raise SandboxError("language: zh, en or ask")
    at: time = sb.study.default_prompt_time
    if body.get("prompt_time"):
        try:
            at = parse_hhmm(str(body["prompt_time"]))
        except ValueError:
            raise SandboxError("prompt time: expected HH:MM") from None
    if body.get("channel") == "web":  # the web diary: the personal link goes out by SMS
        birth_year = _int(body.get("birth_year"), "year of birth")
        link = await sb.enroll_web(
            subject, injection, lang, at, str(body.get("phone") or ""), birth_year
        )
        return web.json_response({"subject": subject, "channel": "web", "link": link})
    if body.get("channel") not in (None, "telegram"):
        raise SandboxError("channel: telegram or web")
    invite = await sb.enroll(subject, injection, lang, at)
    return web.json_response(
        {"subject": invite.subject, "code": invite.code, "user_id": invite.user_id}
    )


async def language(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX_KEY]
    body = await _body(request)
    user_id = _person(sb, body.get("user_id"))
    lang = parse_lang(str(body.get("lang") or ""))
    if lang is None:
        raise SandboxError("language: zh or en")
    if body.get("role") == "staff":
        await sb.set_staff_language(user_id, lang)
    else:
        await sb.set_patient_language(user_id, lang)
    return web.json_response({"ok": True})


def make_app(sb: Sandbox) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[SANDBOX_KEY] = sb
    app[SCREENS_KEY] = []
    app[SCREENS_LOCK] = asyncio.Lock()
    app.router.add_get("/", index)
    app.router.add_get("/screens", screens_page)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/api/state", state)
    app.router.add_get("/api/screens", screens)
    app.router.add_get("/api/file/{file_id}", file)
    app.router.add_get("/api/sms", sms)
    app.router.add_post("/api/send", send)
    app.router.add_post("/api/press", press)
    app.router.add_post("/api/clock", clock)
    app.router.add_post("/api/enroll", enrol)
    app.router.add_post("/api/language", language)
    return app


async def serve(sb: Sandbox, port: int) -> web.AppRunner:
    """Serve the page on 127.0.0.1:`port` (0: any free port); the caller cleans up the runner."""
    runner = web.AppRunner(make_app(sb), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])
