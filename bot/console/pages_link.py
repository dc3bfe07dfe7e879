"""A patient's link and channel: a new web link, a new one-time code, unlinking a lost Telegram
account, moving between Telegram and the web diary — each with a reason, through the same
services as the command line (`diarybot subject reissue-link | channel | unlink`, `diarybot
enroll --reissue`), audited under the signed-in member.

Roles (bot/escalation/permissions.py): a new code or link is part of enrolment (ENROL: an
admin may give one); unlinking an account or changing the channel decides how a patient takes
part (STUDY: coordinators and investigators). A monitor does none of them. The page offers only
the actions that apply to the patient; a hand-made POST for one that does not is refused by the
service with its localized reason, and nothing changes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.console.pages_manage import MAX_REASON, qr_svg, staff_actor
from bot.console.web import can, console, redirect, render, require
from bot.escalation import permissions
from bot.i18n import t
from bot.services import enrolment
from bot.services.onboarding import EnrolError
from bot.web import links
from storage import repo

# action → the permission it needs
ACTIONS = {
    "reissue_link": permissions.ENROL,
    "new_code": permissions.ENROL,
    "unlink": permissions.STUDY,
    "to_web": permissions.STUDY,
    "to_telegram": permissions.STUDY,
}


def applicable(patient: repo.Patient) -> tuple[str, ...]:
    """The actions that make sense for this patient now (the services refuse the others)."""
    if patient.status in ("withdrawn", "completed"):
        return ("unlink",) if patient.chat_id is not None else ()
    if patient.channel == "web":
        return ("reissue_link", "to_telegram")
    return ("unlink" if patient.chat_id is not None else "new_code", "to_web")


async def _patient(request: web.Request) -> repo.Patient:
    rt = console(request).rt
    patient = await repo.patient_by_subject(rt.db.conn, request.match_info["subject"])
    if patient is None:
        raise web.HTTPNotFound()
    return patient


def _page(
    request: web.Request, patient: repo.Patient, *, error: str | None, status: int = 200
) -> web.Response:
    return render(
        request,
        "link.html",
        status=status,
        p=patient,
        offer=[a for a in applicable(patient) if can(request, ACTIONS[a])],
        error=error,
        done=request.query.get("done") == "unlink",
    )


async def link_page(request: web.Request) -> web.Response:
    await require(request, permissions.ENROL)
    return _page(request, await _patient(request), error=None)


async def link_action(request: web.Request) -> web.StreamResponse:
    await require(request, permissions.ENROL)  # a monitor: refused and audited before anything
    form = await request.post()
    action = str(form.get("action", ""))
    member = await require(request, ACTIONS.get(action, permissions.ENROL))
    rt = console(request).rt
    _ = t(member.account.lang)
    patient = await _patient(request)
    subject = patient.subject
    reason = str(form.get("reason", "")).strip()

    def refuse(text: str) -> web.Response:
        return _page(request, patient, error=text, status=400)

    if action not in ACTIONS:
        return refuse(_("This is not available."))
    if not reason:
        return refuse(_("Please give a reason."))
    if len(reason) > MAX_REASON:
        return refuse(_("The reason is too long (at most 500 characters)."))
    who = staff_actor(member)
    days = rt.study.code_valid_hours // 24
    try:
        if action == "reissue_link":
            url = await links.reissue(rt, subject, reason=reason, actor=who)
            return _issued(request, subject, link=url, sms=True, days=days)
        if action == "new_code":
            result = await enrolment.reissue(rt, subject, reason=reason, actor=who)
            return _issued(request, subject, code=result.code, link=result.link, days=days)
        if action == "unlink":
            await enrolment.unlink(rt, subject, reason=reason, actor=who)
            response = redirect(request, "link", subject=subject)
            response.headers["Location"] += "?done=unlink"
            return response
        if action == "to_web":
            raw_year = str(form.get("birth_year", "")).strip()
            if raw_year and not (raw_year.isascii() and raw_year.isdigit()):
                return refuse(_("Please give an adult's year of birth as four digits, like 1956."))
            change = await links.change_channel(
                rt,
                subject,
                "web",
                phone=str(form.get("phone", "")).strip()[:32],
                birth_year=int(raw_year[:4]) if raw_year else None,
                reason=reason,
                actor=who,
            )
            return _issued(request, subject, link=change.link, sms=True, days=days, moved="web")
        change = await links.change_channel(
            rt, subject, "telegram", phone=None, birth_year=None, reason=reason, actor=who
        )
    except EnrolError as exc:
        return refuse(exc.text(_))
    if change.code is None:  # already linked to a chat: nothing to hand over
        return redirect(request, "patient", subject=subject)
    return _issued(
        request, subject, code=change.code, link=change.deep_link, days=days, moved="telegram"
    )


def _issued(
    request: web.Request,
    subject: str,
    *,
    days: int,
    link: str | None = None,
    code: str | None = None,
    sms: bool = False,
    moved: str | None = None,
) -> web.Response:
    """Shown once, in the answer to the POST (the code and the link are stored hashed)."""
    context: dict[str, Any] = {
        "subject": subject,
        "code": code,
        "link": link,
        "qr": qr_svg(link) if link else None,
        "sms": sms,
        "moved": moved,
        "days": days,
    }
    return render(request, "issued.html", **context)


def add_routes(app: web.Application) -> None:
    subject = r"{subject:[A-Za-z0-9_-]{1,32}}"
    app.router.add_get(f"/patients/{subject}/link", link_page, name="link")
    app.router.add_post(f"/patients/{subject}/link", link_action)
