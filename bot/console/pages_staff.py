"""Staff accounts, for administrators: invite (or link a Telegram staff member), send a new
invitation (which also unlocks a locked account), remove. Each audited under the admin."""

from __future__ import annotations

from aiohttp import web

from bot.console import accounts
from bot.console.accounts import AccountError
from bot.console.invites import email_invite, invite_url, public_base
from bot.console.messages import message
from bot.console.web import Current, console, render, require
from bot.escalation import permissions
from bot.i18n import parse_lang, t
from storage import audit
from storage import console as store


def _actor(member: Current) -> str:
    return f"staff:{member.account.staff_id}"


async def _page(
    request: web.Request,
    *,
    error: str | None = None,
    link: str | None = None,
    emailed: str | None = None,
    status: int = 200,
) -> web.Response:
    rt = console(request).rt
    return render(
        request,
        "staff.html",
        status=status,
        accounts=await store.accounts(rt.db.conn),
        roles=permissions.ROLES,
        error=error,
        link=link,
        emailed=emailed,
    )


async def staff_page(request: web.Request) -> web.Response:
    await require(request, permissions.STAFF)
    return await _page(request)


async def staff_post(request: web.Request) -> web.Response:
    member = await require(request, permissions.STAFF)
    rt = console(request).rt
    _ = t(member.account.lang)
    form = await request.post()
    action = str(form.get("action", ""))
    try:
        if action == "invite":
            telegram_raw = str(form.get("telegram_id", "")).strip()
            telegram_id = int(telegram_raw) if telegram_raw else None
            if telegram_id is not None and telegram_id <= 0:
                raise ValueError
            lang = parse_lang(str(form.get("lang", ""))) or "zh_Hans"
            name = str(form.get("name", "")).strip()[:80]
            if not name:
                return await _page(request, error=_("Please give a name."), status=400)
            async with rt.db.transaction() as conn:
                inv = await accounts.create_account(
                    rt,
                    conn,
                    email=str(form.get("email", ""))[:254],
                    name=name,
                    role=str(form.get("role", "")),
                    lang=lang,
                    telegram_id=telegram_id,
                    by=_actor(member),
                )
        elif action in ("reinvite", "remove"):
            staff_id = int(str(form.get("staff_id", "")))
            target = await store.account(rt.db.conn, staff_id)
            if target is None or not target.active or target.email is None:
                return await _page(request, error=message(_, "not_found"), status=404)
            async with rt.db.transaction() as conn:
                if action == "remove":
                    await store.update(conn, staff_id, active=0)
                    await store.revoke_all(conn, staff_id, rt.now())
                    await audit.record(
                        conn, rt.now(), _actor(member), "staff_remove", entity=f"staff:{staff_id}"
                    )
                    return await _page(request)
                await store.update(conn, staff_id, locked_at=None, failed_logins=0)
                inv = await accounts.invite(rt, conn, staff_id, by=_actor(member))
        else:
            return await _page(request, error=_("This is not available."), status=400)
    except AccountError as exc:
        return await _page(request, error=message(_, exc.code), status=400)
    except ValueError:
        return await _page(request, error=_("This is not available."), status=400)
    target = await store.account(rt.db.conn, inv.staff_id)
    assert target is not None and target.email is not None
    link = invite_url(public_base(), inv.token)
    if await email_invite(target.email, target.name, target.lang, link):
        return await _page(request, emailed=target.email)
    return await _page(request, link=link)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/staff", staff_page, name="staff")
    app.router.add_post("/staff", staff_post)
