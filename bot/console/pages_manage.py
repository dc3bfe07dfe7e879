"""Enrolment (one patient, or a CSV file with a preview) and a patient's participation: pause,
resume, withdraw, move Day 0 — each with a reason, each through the same service the Telegram
commands and the command line use, audited under the signed-in member."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import segno
from aiohttp import web

from bot.console.web import Current, console, redirect, render, require
from bot.domain.study import parse_hhmm
from bot.escalation import permissions
from bot.followup import lifecycle
from bot.followup.lifecycle import LifecycleError
from bot.i18n import parse_lang, t
from bot.services.bulk import BulkError, enroll_rows
from bot.services.enrolment import SUBJECT_RE, EnrolError, check_timezone, enroll
from storage import repo

MAX_REASON = 500
MAX_CSV = 60_000


def staff_actor(member: Current) -> str:
    return f"staff:{member.account.staff_id}"


def qr_svg(link: str) -> str:
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="svg", scale=4, border=2, xmldecl=False)
    return out.getvalue().decode("utf-8")


# --------------------------------------------------------------------------- enrolment


async def enrol_page(request: web.Request) -> web.Response:
    await require(request, permissions.ENROL)
    rt = console(request).rt
    return render(
        request,
        "enrol.html",
        error=None,
        form={
            "subject": "",
            "injection_date": "",
            "lang": "zh_Hans",
            "timezone": rt.study.timezone,
            "prompt_time": rt.study.default_prompt_time.strftime("%H:%M"),
            "channel": "telegram",
            "phone": "",
            "birth_year": "",
        },
    )


async def enrol(request: web.Request) -> web.Response:
    member = await require(request, permissions.ENROL)
    rt = console(request).rt
    _ = t(member.account.lang)
    form = await request.post()
    values = {
        k: str(form.get(k, "")).strip()[:64]
        for k in (
            "subject",
            "injection_date",
            "lang",
            "timezone",
            "prompt_time",
            "channel",
            "phone",
            "birth_year",
        )
    }

    def refuse(text: str) -> web.Response:
        return render(request, "enrol.html", status=400, error=text, form=values)

    subject = values["subject"]
    if not SUBJECT_RE.match(subject):
        return refuse(_("Subject IDs use letters, digits, \u2018-\u2019 and \u2018_\u2019 only."))
    try:
        injection = date.fromisoformat(values["injection_date"])
    except ValueError:
        return refuse(_("Please give the injection date as YYYY-MM-DD, like 2026-12-10."))
    lang = parse_lang(values["lang"])
    if lang is None:
        return refuse(_("The language must be zh or en."))
    try:
        at = parse_hhmm(values["prompt_time"])
        tz = check_timezone(values["timezone"])
    except (ValueError, EnrolError):
        return refuse(_("Please check the time zone and the reminder time (HH:MM)."))
    channel = values["channel"] or "telegram"
    if channel not in ("telegram", "web"):
        return refuse(_("This is not available."))
    phone, year = None, None
    if channel == "web":
        # A web patient: the link goes to this number by SMS; the year is asked on a new phone.
        phone = values["phone"]
        if not (values["birth_year"].isascii() and values["birth_year"].isdigit()):
            return refuse(_("Please give an adult's year of birth as four digits, like 1956."))
        year = int(values["birth_year"][:4])
    if await repo.patient_by_subject(rt.db.conn, subject) is not None:
        return refuse(_("{subject} is already enrolled.", subject=subject))
    try:
        result = await enroll(
            rt,
            subject,
            injection,
            lang,
            tz,
            at,
            actor=staff_actor(member),
            channel=channel,
            phone=phone,
            birth_year=year,
        )
    except EnrolError as exc:
        return refuse(_("Not enrolled: {reason}", reason=exc.text(_)))
    # Shown once (the code is stored hashed); POST answers with the page, no redirect.
    return render(
        request,
        "enrolled.html",
        rows=[_enrolled(result.subject, result.code, result.link, result.channel)],
        days=rt.study.code_valid_hours // 24,
        injection=_.date(injection),
    )


def _enrolled(subject: str, code: str, link: str | None, channel: str) -> dict[str, Any]:
    return {
        "subject": subject,
        "code": code,
        "link": link,
        "qr": qr_svg(link) if link else None,
        "web": channel == "web",
    }


async def bulk_page(request: web.Request) -> web.Response:
    await require(request, permissions.ENROL)
    return render(request, "bulk.html", error=None, csv="", preview=None)


async def bulk(request: web.Request) -> web.Response:
    """Two steps: "preview" enrols every row in a transaction that is rolled back (so every
    check runs exactly as it will), "commit" enrols them for real — all rows or none."""
    member = await require(request, permissions.ENROL)
    rt = console(request).rt
    _ = t(member.account.lang)
    form = await request.post()
    upload = form.get("file")
    text = str(form.get("csv", ""))
    if isinstance(upload, web.FileField):
        text = upload.file.read(MAX_CSV + 1).decode("utf-8-sig", errors="replace")
    if len(text) > MAX_CSV:
        return render(
            request,
            "bulk.html",
            status=400,
            error=_("This file is too large."),
            csv="",
            preview=None,
        )
    commit = form.get("step") == "commit"
    try:
        results = await enroll_rows(rt, text, actor=staff_actor(member), preview=not commit)
    except BulkError as exc:
        return render(
            request,
            "bulk.html",
            status=400,
            error=_("Nothing was enrolled: {reason}", reason=exc.text(_)),
            csv=text,
            preview=None,
        )
    if not commit:
        return render(request, "bulk.html", error=None, csv=text, preview=results)
    return render(
        request,
        "enrolled.html",
        rows=[_enrolled(r.subject, r.code, r.link, r.channel) for r in results],
        days=rt.study.code_valid_hours // 24,
        injection=None,
    )


# --------------------------------------------------------------------------- participation


async def manage_page(request: web.Request) -> web.Response:
    await require(request, permissions.STUDY)
    rt = console(request).rt
    patient = await repo.patient_by_subject(rt.db.conn, request.match_info["subject"])
    if patient is None:
        raise web.HTTPNotFound()
    return render(request, "manage.html", p=patient, error=None)


async def manage(request: web.Request) -> web.StreamResponse:
    member = await require(request, permissions.STUDY)
    rt = console(request).rt
    _ = t(member.account.lang)
    subject = request.match_info["subject"]
    patient = await repo.patient_by_subject(rt.db.conn, subject)
    if patient is None:
        raise web.HTTPNotFound()
    form = await request.post()
    action = str(form.get("action", ""))
    reason = str(form.get("reason", "")).strip()

    def refuse(text: str) -> web.Response:
        return render(request, "manage.html", status=400, p=patient, error=text)

    if not reason:
        return refuse(_("Please give a reason."))
    if len(reason) > MAX_REASON:
        return refuse(_("The reason is too long (at most 500 characters)."))
    who = staff_actor(member)
    try:
        if action == "pause":
            await lifecycle.pause(rt, subject, actor=who, reason=reason)
        elif action == "resume":
            await lifecycle.resume(rt, subject, actor=who, reason=reason)
        elif action == "withdraw":
            if form.get("confirm") != "yes":
                return refuse(_("Tick the box to confirm the withdrawal."))
            await lifecycle.withdraw(rt, subject, actor=who, reason=reason)
        elif action == "reanchor":
            try:
                new_date = date.fromisoformat(str(form.get("injection_date", "")).strip())
            except ValueError:
                return refuse(_("Please give the injection date as YYYY-MM-DD, like 2026-12-10."))
            await lifecycle.reanchor_patient(rt, subject, new_date, actor=who, reason=reason)
        else:
            return refuse(_("This is not available."))
    except LifecycleError as exc:
        return refuse(exc.text(_))
    return redirect(request, "patient", subject=subject)


def add_routes(app: web.Application) -> None:
    subject = r"{subject:[A-Za-z0-9_-]{1,32}}"
    app.router.add_get("/enrol", enrol_page, name="enrol")
    app.router.add_post("/enrol", enrol)
    app.router.add_get("/enrol/csv", bulk_page, name="bulk")
    app.router.add_post("/enrol/csv", bulk)
    app.router.add_get(f"/patients/{subject}/manage", manage_page, name="manage")
    app.router.add_post(f"/patients/{subject}/manage", manage)
