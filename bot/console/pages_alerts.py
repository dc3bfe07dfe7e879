"""The alerts inbox and one alert's page: the same card and the same actions as in Telegram.

No second copy of the alert views: the page shows `alert_card`'s text, and its buttons become
forms whose value is the card's own callback data. A posted action is accepted only if the
alert's *current* card offers it (a stale or forged form changes nothing), and then goes to the
same service function a Telegram tap calls, which refreshes every Telegram copy of the card.
"""

from __future__ import annotations

from aiohttp import web

from bot.console.messages import message
from bot.console.web import console, redirect, render, require
from bot.escalation import permissions, service
from bot.escalation.views import CONTACTED, LEVELS, TRIAGE_CHOICES, alert_card, list_line
from bot.i18n import N_, T, t
from conversations.callbacks import parse
from storage import alerts as store
from storage import audit, repo

NOTE_MAX = 1000
# The safety text's showings (storage.alerts.safety_shown): how and when, in the page's words.
SHOWN_CHANNELS = {"telegram": N_("Telegram"), "sms": N_("SMS"), "web": N_("Web diary")}
SHOWN_MOMENTS = {"answer": N_("At the urgent answer"), "submit": N_("After Submit")}


def _label(_: T, labels: dict[str, str], code: object) -> str:
    """A stored code in the page's words (an unknown code as it is)."""
    return _(labels[code]) if isinstance(code, str) and code in labels else str(code or "")


def _staff(member_account: object) -> repo.Staff:
    from storage.console import Account

    assert isinstance(member_account, Account)
    a = member_account
    return repo.Staff(a.staff_id, a.role, a.name, a.lang, a.active)


async def inbox(request: web.Request) -> web.Response:
    member = await require(request, permissions.VIEW)
    rt = console(request).rt
    _ = t(member.account.lang)
    now = rt.now()
    alerts = await service.unfinished_alerts(rt.db.conn)
    order = list(LEVELS)
    alerts.sort(key=lambda a: (order.index(a.level) if a.level in order else 9, a.raised_at))
    rows = [
        {
            "id": a.id,
            "level": a.level,
            "icon": LEVELS.get(a.level, ("•", ""))[0],
            "line": list_line(_, rt.study, a, now),
        }
        for a in alerts
    ]
    return render(request, "inbox.html", rows=rows)


async def alert_page(request: web.Request) -> web.Response:
    member = await require(request, permissions.VIEW)
    return await _show(request, member.account.lang, notice=None)


async def _show(
    request: web.Request, lang: str, *, notice: str | None, status: int = 200
) -> web.Response:
    member = await require(request, permissions.VIEW)
    rt = console(request).rt
    alert_id = int(request.match_info["id"])
    async with rt.db.transaction() as conn:
        alert = await store.get(conn, alert_id)
        if alert is not None:
            await audit.record(
                conn,
                rt.now(),
                f"staff:{member.account.staff_id}",
                "staff_access",
                subject=alert.subject,
                entity=f"alert:{alert.id}",
                new="console:alert",
            )
    _ = t(lang)
    if alert is None:
        text = message(_, "not_found")
        return render(request, "message.html", status=404, title=text, text=text)
    names = await store.staff_names(rt.db.conn, alert.staff_ids())
    text, buttons = alert_card(_, rt.study, alert, kind="show", now=rt.now(), names=names)
    actions = [
        {"label": label, "data": data}
        for row in buttons
        for label, data in row
        if data and permissions.allowed(member.account.role, permissions.CLINICAL)
    ]
    shown = [
        {
            **s,
            "channel": _label(_, SHOWN_CHANNELS, s["channel"]),
            "moment": _label(_, SHOWN_MOMENTS, s["moment"]),
        }
        for s in await store.safety_shown(rt.db.conn, alert.id)
    ]
    return render(
        request,
        "alert.html",
        status=status,
        alert=alert,
        card=text,
        actions=actions,
        notice=notice,
        safety_shown=shown,
    )


async def act(request: web.Request) -> web.StreamResponse:
    member = await require(request, permissions.CLINICAL)
    rt = console(request).rt
    _ = t(member.account.lang)
    alert_id = int(request.match_info["id"])
    form = await request.post()
    data = str(form.get("action", ""))[:64]
    alert = await store.get(rt.db.conn, alert_id)
    if alert is None:
        text = message(_, "not_found")
        return render(request, "message.html", status=404, title=text, text=text)
    names = await store.staff_names(rt.db.conn, alert.staff_ids())
    _text, buttons = alert_card(_, rt.study, alert, kind="show", now=rt.now(), names=names)
    offered = {d for row in buttons for _label, d in row}
    cb = parse(data)
    if data not in offered or cb is None or cb.int_arg(0) != alert_id:
        return await _show(request, member.account.lang, notice=message(_, "stale"), status=409)
    staff = _staff(member.account)
    if cb.verb == "ack":
        result = await service.acknowledge(rt, staff, alert_id)
    elif cb.verb == "tri" and len(cb.args) == 2 and cb.args[1] in (*TRIAGE_CHOICES, CONTACTED):
        result = await service.triage(rt, staff, alert_id, cb.args[1])
    elif cb.verb == "sae":
        result = await service.sae_reported(rt, staff, alert_id)
    elif cb.verb == "note":
        note = str(form.get("note", "")).strip()
        if not note:
            return await _show(
                request, member.account.lang, notice=message(_, "note_empty"), status=400
            )
        if len(note) > NOTE_MAX:
            return await _show(
                request, member.account.lang, notice=message(_, "note_long"), status=400
            )
        result = await service.add_note(rt, staff, alert_id, note)
    else:
        return await _show(request, member.account.lang, notice=message(_, "stale"), status=409)
    if result.status != "ok":
        return await _show(request, member.account.lang, notice=message(_, "stale"), status=409)
    return redirect(request, "alert", id=str(alert_id))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", inbox, name="inbox")
    app.router.add_get(r"/alerts/{id:\d{1,9}}", alert_page, name="alert")
    app.router.add_post(r"/alerts/{id:\d{1,9}}", act)
