"""The address that SMS, WeCom and e-mail alerts carry: `PUBLIC_URL/ack/<token>`.

It shows nothing itself: it sends the browser to the staff console (`/console/ack/<token>`,
bot/console/pages_ack.py), which refuses forged, expired and used links, asks the staff member
to sign in, records "seen" for the signed-in member and opens the alert there. The console is
always mounted next to it (bot/web/app.py), so there is no page here that shows the alert
without a sign-in any more. The alert's own text never appears at this address.

Mount with `add_routes(app)` (`rt` is accepted for the callers of the earlier page).
"""

from __future__ import annotations

from aiohttp import web

from bot.channels import links
from bot.services.runtime import Runtime

CONSOLE_PATH = "/console/ack/"


def add_routes(app: web.Application, rt: Runtime | None = None) -> None:
    del rt  # the console does the work
    app.router.add_get(links.PATH + r"{token:[A-Za-z0-9_.=-]{1,400}}", _to_console)


async def _to_console(request: web.Request) -> web.StreamResponse:
    return web.Response(
        status=303,
        headers={
            "Location": CONSOLE_PATH + request.match_info["token"],
            "Cache-Control": "no-store",
        },
    )
