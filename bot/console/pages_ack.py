"""The console side of the one-time alert links of SMS, WeCom and e-mail alerts.

`PUBLIC_URL/ack/<token>` (bot/channels/ack_web.py) sends the browser here, to
`/console/ack/<token>`. What "one-time" means (docs/channels.md, "The one-time alert link"):

- The page shows no clinical content. A forged or unknown token, an expired link and a used
  link each get a page that says so and changes nothing.
- A valid, unused link asks for the console sign-in first (`signed_in`: the login page with
  `next=/console/ack/<token>`, a path under /console/ that `safe_next` accepts). Link previews
  (WeCom and mail clients fetch links) and anyone without an account stop there: nothing is
  recorded and the link stays unused.
- The first opening by a signed-in member whose role may view alerts uses the link up, records
  `alert_seen` with *that member* as the actor (never the person the link was sent to: a WeCom
  link is seen by the whole group chat), and lands on the alert's page, /console/alerts/N,
  where acknowledging and triage are. The console's own permission checks apply there.
- A second opening says the link has been used and points to the alert in the console.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from bot.channels import links
from bot.clock import from_iso
from bot.console.messages import message
from bot.console.web import console, locale_of, redirect, render, require
from bot.escalation import permissions
from bot.i18n import t
from storage import alerts as alert_store
from storage import audit
from storage import channels as store

TOKEN = r"{token:[A-Za-z0-9_.=-]{1,400}}"


def _refused(request: web.Request, code: str, status: int, alert_id: int | None) -> web.Response:
    text = message(t(locale_of(request)), code)
    return render(request, "ack.html", status=status, title=text, text=text, alert_id=alert_id)


async def open_link(request: web.Request) -> web.StreamResponse:
    rt = console(request).rt
    token = request.match_info["token"]
    async with rt.db.transaction() as conn:  # the link secret is made on first use
        claim = links.verify(await links.secret(conn), token)
        row = await store.link(conn, claim.nonce) if claim else None
    if claim is None or row is None or row["alert_id"] != claim.alert_id:
        return _refused(request, "link_invalid", 404, None)
    if row["used_at"] is not None:
        return _refused(request, "link_used", 410, claim.alert_id)
    now = rt.now()
    if now >= datetime.fromtimestamp(claim.expires, UTC) or now >= from_iso(row["expires_at"]):
        return _refused(request, "link_expired", 410, claim.alert_id)
    member = await require(request, permissions.VIEW)  # not signed in: the login page first
    async with rt.db.transaction() as conn:
        alert = await alert_store.get(conn, claim.alert_id)
        if alert is None:
            return _refused(request, "link_invalid", 404, None)
        if not await store.use_link(conn, claim.nonce, now):  # a second tab, a replay
            return _refused(request, "link_used", 410, alert.id)
        await audit.record(
            conn,
            now,
            f"staff:{member.account.staff_id}",  # who opened it, not whom it was sent to
            "alert_seen",
            subject=alert.subject,
            entity=f"alert:{alert.id}",
            new={"route": row["route"], "via": "link"},
        )
    return redirect(request, "alert", id=str(alert.id))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ack/" + TOKEN, open_link, name="ack")
