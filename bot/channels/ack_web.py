"""The page a one-time alert link opens (links from SMS, WeCom and e-mail alerts).

GET shows the alert (its card as Telegram shows it, in the language of the person it was sent
to) and a button; POST records "seen" by that person (audited: `alert_seen`, with the route)
and uses the link up. Link previews (WeCom and mail clients fetch links) therefore record
nothing. Forged, expired and already used links are refused with a page that says so, and
change nothing. The page also links to the alert in the staff console (/console/alerts/N),
which asks the staff member to sign in and then lets them acknowledge and triage it there.

Mount with `add_routes(app, rt)` (or set `app[RT]` and call `add_routes(app)`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2
from aiohttp import web

from bot.channels import links
from bot.clock import from_iso
from bot.escalation.views import alert_card
from bot.i18n import T, t
from bot.services.runtime import Runtime
from storage import alerts as alert_store
from storage import audit
from storage import channels as store

RT = web.AppKey("diarybot_runtime", Runtime)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
)

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def add_routes(app: web.Application, rt: Runtime | None = None) -> None:
    if rt is not None:
        app[RT] = rt
    app.router.add_get(links.PATH + "{token}", _show)
    app.router.add_post(links.PATH + "{token}", _confirm)


def _page(_: T, lang: str, status: int = 200, **ctx: object) -> web.Response:
    ctx.setdefault("title", _("Study alert"))
    html = _env.get_template("ack.html").render(
        html_lang="zh-Hans" if lang.startswith("zh") else "en", **ctx
    )
    return web.Response(text=html, status=status, content_type="text/html", headers=HEADERS)


async def _check(request: web.Request) -> tuple[web.Response | None, Runtime, dict[str, object]]:
    """(refusal page or None, runtime, the link's row and alert)."""
    rt = request.app[RT]
    default = rt.study.languages[0]
    token = request.match_info["token"]
    async with rt.db.transaction() as conn:
        key = await links.secret(conn)
        claim = links.verify(key, token)
        row = await store.link(conn, claim.nonce) if claim else None
        alert = await alert_store.get(conn, claim.alert_id) if claim else None
    if claim is None or row is None or alert is None or row["alert_id"] != claim.alert_id:
        _ = t(default)
        msg = _("This link is not valid. Open the alert in Telegram or ask the study team.")
        return _page(_, default, 404, message=msg, refused=True), rt, {}
    lang = row["lang"]
    _ = t(lang)
    now = rt.now()
    if row["used_at"] is not None:
        msg = _(
            "This link has already been used: {name} saw this alert at {time}.",
            name=_(row["recipient"]),
            time=_.datetime(from_iso(row["used_at"]), rt.study.timezone),
        )
        return _page(_, lang, 410, message=msg, refused=True), rt, {}
    if now >= datetime.fromtimestamp(claim.expires, UTC) or now >= from_iso(row["expires_at"]):
        msg = _("This link has expired. Open the alert in Telegram or ask the study team.")
        return _page(_, lang, 410, message=msg, refused=True), rt, {}
    return None, rt, {"row": row, "alert": alert, "nonce": claim.nonce, "lang": lang}


async def _card(rt: Runtime, _: T, alert: alert_store.Alert) -> str:
    async with rt.db.transaction() as conn:
        names = await alert_store.staff_names(conn, alert.staff_ids())
    text, _buttons = alert_card(_, rt.study, alert, kind="show", now=rt.now(), names=names)
    return text


async def _show(request: web.Request) -> web.Response:
    refused, rt, ctx = await _check(request)
    if refused is not None:
        return refused
    lang = str(ctx["lang"])
    _ = t(lang)
    alert = ctx["alert"]
    assert isinstance(alert, alert_store.Alert)
    row: dict[str, object] = dict(ctx["row"])  # type: ignore[call-overload]
    return _page(
        _,
        lang,
        card=await _card(rt, _, alert),
        sent_to=_("Sent to {name}.", name=_(str(row["recipient"]))),
        confirm=_("I have seen this alert"),
        console=_console_link(_, alert.id),
    )


async def _confirm(request: web.Request) -> web.Response:
    refused, rt, ctx = await _check(request)
    if refused is not None:
        return refused
    lang = str(ctx["lang"])
    _ = t(lang)
    alert = ctx["alert"]
    assert isinstance(alert, alert_store.Alert)
    row: dict[str, object] = dict(ctx["row"])  # type: ignore[call-overload]
    now = rt.now()
    staff_id = row["staff_id"]
    actor = f"staff:{staff_id}" if staff_id is not None else f"{row['route']}:{row['recipient']}"
    async with rt.db.transaction() as conn:
        if not await store.use_link(conn, str(ctx["nonce"]), now):  # a second tab, a replay
            return _page(_, lang, 410, message=_("This link has already been used."), refused=True)
        await audit.record(
            conn,
            now,
            actor,
            "alert_seen",
            subject=alert.subject,
            entity=f"alert:{alert.id}",
            new={"route": row["route"], "recipient": row["recipient"]},
        )
    msg = _(
        "Recorded: {name} saw this alert at {time}.",
        name=_(str(row["recipient"])),
        time=_.datetime(now, rt.study.timezone),
    )
    return _page(
        _, lang, message=msg, card=await _card(rt, _, alert), console=_console_link(_, alert.id)
    )


def _console_link(_: T, alert_id: int) -> dict[str, str]:
    """To acknowledge and triage: the alert in the staff console (sign-in first)."""
    return {
        "href": f"/console/alerts/{alert_id}",
        "label": _("Sign in to the study console to acknowledge and triage this alert"),
    }
