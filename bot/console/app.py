"""The staff console's sub-application: the console's middlewares and every page's routes.

Above both the console's machinery (bot/console/web.py) and its pages (bot/console/pages_*.py,
which import that machinery), so that neither imports the other's side.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from aiohttp import web

from bot.console import (
    pages_ack,
    pages_alerts,
    pages_auth,
    pages_data,
    pages_link,
    pages_manage,
    pages_patients,
    pages_staff,
)
from bot.console.keys import SecretBox
from bot.console.web import (
    CONSOLE,
    MAX_BODY,
    Console,
    csrf,
    security_headers,
    session,
    templates,
    throttle,
)
from bot.services.runtime import Runtime
from bot.web.server import RateLimits, WebConfig


def build(
    rt: Runtime,
    *,
    box: SecretBox | None = None,
    secure_cookies: bool | None = None,
    limits: RateLimits | None = None,
) -> web.Application:
    """The console as a sub-application (mounted at /console/ by bot.web.app).

    Cookies are Secure when the request came over HTTPS, directly or through a trusted TLS
    proxy (X-Forwarded-Proto; DIARYBOT_TRUSTED_PROXIES), as the web diary's are. `limits`: the
    root app's, so the sign-in throttle counts the same client addresses."""
    app = web.Application(
        middlewares=[security_headers, throttle, session, csrf], client_max_size=MAX_BODY
    )
    app[CONSOLE] = Console(
        rt=rt,
        box=box or SecretBox.for_database(rt.db.path),
        templates=templates(),
        secure_cookies=secure_cookies,
        limits=limits or RateLimits(WebConfig()),
    )
    pages_auth.add_routes(app)
    pages_alerts.add_routes(app)
    pages_ack.add_routes(app)
    pages_patients.add_routes(app)
    pages_manage.add_routes(app)
    pages_link.add_routes(app)
    pages_data.add_routes(app)
    pages_staff.add_routes(app)
    app.router.add_static("/static", str(_static_dir()), name="static")
    return app


def _static_dir() -> Any:
    return resources.files("bot.console") / "static"
