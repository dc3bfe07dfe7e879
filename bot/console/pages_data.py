"""Exports as downloads, the audit trail with filters and `verify`, and site corrections signed
with the member's password (21 CFR Part 11 §11.200: an electronic signature is two components,
here the signed-in identity and the re-entered password, and it names its meaning)."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from bot.console import accounts
from bot.console.messages import message
from bot.console.web import console, render, require
from bot.dataout import exports
from bot.dataout.dataset import UnknownSubject
from bot.escalation import permissions
from bot.escalation.corrections import CorrectionError, Signature, correct_entry
from bot.i18n import t
from storage import audit, repo
from storage import console as store

MAX_REASON = 500


# --------------------------------------------------------------------------- exports


async def exports_page(request: web.Request) -> web.Response:
    await require(request, permissions.VIEW)
    rt = console(request).rt
    return render(
        request,
        "exports.html",
        formats=exports.FORMATS,
        subjects=await store.subjects(rt.db.conn),
        error=None,
    )


async def export(request: web.Request) -> web.StreamResponse:
    member = await require(request, permissions.VIEW)
    rt = console(request).rt
    _ = t(member.account.lang)
    form = await request.post()
    fmt = str(form.get("format", ""))
    subject = str(form.get("subject", "")).strip() or None
    since_raw = str(form.get("since", "")).strip()

    def refuse(text: str) -> web.Response:
        return render(
            request,
            "exports.html",
            status=400,
            formats=exports.FORMATS,
            subjects=[],
            error=text,
        )

    if fmt not in exports.FORMATS:
        return refuse(_("This is not available."))
    try:
        since = date.fromisoformat(since_raw) if since_raw else None
    except ValueError:
        return refuse(_("Please give the date as YYYY-MM-DD, like 2026-12-10."))
    now = rt.now()
    try:
        result = await exports.run(rt.db.path, rt.study, now, fmt, subject=subject, since=since)
    except UnknownSubject:
        return refuse(_("There is no patient {subject}.", subject=subject or ""))
    name, data = exports.one_document(result, rt.study, now)
    async with rt.db.transaction() as conn:
        await exports.record(
            conn,
            now,
            f"staff:{member.account.staff_id}",
            result,
            subject=subject,
            since=since,
            destination=f"console:{name}",
        )
    content_type = {
        "xml": "application/xml",
        "json": "application/fhir+json",
        "zip": "application/zip",
    }.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    return web.Response(
        body=data,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --------------------------------------------------------------------------- audit trail


async def audit_page(request: web.Request) -> web.Response:
    await require(request, permissions.VIEW)
    rt = console(request).rt
    q = request.query
    f = store.AuditFilter(
        subject=q.get("subject", "").strip()[:32] or None,
        actor=q.get("actor", "").strip()[:64] or None,
        action=q.get("action", "").strip()[:64] or None,
        since=_iso_or_none(q.get("since", "")),
        until=_iso_or_none(q.get("until", "")),
    )
    rows = await store.audit_rows(rt.db.conn, f)
    check = None
    if q.get("verify") == "1":
        result = await audit.verify(rt.db.conn)
        check = {"ok": result.ok, "checked": result.checked, "problem": result.problem}
    return render(
        request,
        "audit.html",
        trail=rows,
        f=f,
        actions=await store.audit_actions(rt.db.conn),
        head=await audit.head(rt.db.conn),
        check=check,
    )


def _iso_or_none(text: str) -> str | None:
    try:
        return date.fromisoformat(text.strip()).isoformat() if text.strip() else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- corrections


async def correct_page(request: web.Request) -> web.Response:
    await require(request, permissions.CORRECT)
    return await _correct_form(request, error=None)


async def _correct_form(
    request: web.Request,
    *,
    error: str | None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> web.Response:
    rt = console(request).rt
    patient = await repo.patient_by_subject(rt.db.conn, request.match_info["subject"])
    if patient is None:
        raise web.HTTPNotFound()
    diaries = await store.completed_diaries(rt.db.conn, patient.id)
    return render(
        request,
        "correct.html",
        status=status,
        p=patient,
        diaries=[{"day": d["study_day"], "key": d["key"]} for d in diaries],
        items=[i.code for i in rt.study.items],
        error=error,
        values=values or {"day": "", "item": "", "value": "", "reason": ""},
    )


async def correct(request: web.Request) -> web.Response:
    member = await require(request, permissions.CORRECT)
    c = console(request)
    rt = c.rt
    _ = t(member.account.lang)
    form = await request.post()
    values = {
        k: str(form.get(k, "")).strip()[:MAX_REASON] for k in ("day", "item", "value", "reason")
    }

    async def refuse(text: str, status: int = 400) -> web.Response:
        return await _correct_form(request, error=text, status=status, values=values)

    if not values["reason"]:
        return await refuse(_("Please give a reason."))
    try:
        day = int(values["day"])
    except ValueError:
        return await refuse(_("Choose the diary to correct."))
    signed = await accounts.check_signature(rt, member, str(form.get("password", "")))
    if not signed:
        return await refuse(message(_, "signature_failed"), status=403)
    try:
        done = await correct_entry(
            rt,
            request.match_info["subject"],
            day,
            values["item"],
            values["value"],
            values["reason"],
            actor=f"staff:{member.account.staff_id}",
            signature=Signature(
                staff_id=member.account.staff_id,
                name=member.account.name,
                meaning="correction approved",
            ),
        )
    except CorrectionError as exc:
        return await refuse(_("Not corrected: {reason}", reason=exc.text(_)))
    return render(request, "corrected.html", p_subject=done.subject, done=done)


def add_routes(app: web.Application) -> None:
    subject = r"{subject:[A-Za-z0-9_-]{1,32}}"
    app.router.add_get("/exports", exports_page, name="exports")
    app.router.add_post("/exports", export)
    app.router.add_get("/audit", audit_page, name="audit")
    app.router.add_get(f"/patients/{subject}/correct", correct_page, name="correct")
    app.router.add_post(f"/patients/{subject}/correct", correct)
