"""Patients: one line each, and one patient's page (diaries, chart, visits, audit trail).

Every view of patient data is audited as `staff_access` under the signed-in member, as the
Telegram /patient command is.
"""

from __future__ import annotations

from aiohttp import web

from bot.console.messages import diary_status, message
from bot.console.web import Current, console, render, require
from bot.dataout.dataset import UnknownSubject
from bot.domain.schedule import visit_schedule
from bot.escalation import overview, permissions
from bot.escalation.staff_views import STATUS_LABELS, baseline_line, phase_name, ratio
from bot.escalation.views import list_line
from bot.i18n import t
from conversations.dataout import patient_chart
from storage import audit
from storage import console as store

SUBJECT = r"{subject:[A-Za-z0-9_-]{1,32}}"
HISTORY_DAYS = 800  # the whole 24-month follow-up and the baseline week


async def _access(request: web.Request, member: Current, subject: str | None, what: str) -> None:
    rt = console(request).rt
    async with rt.db.transaction() as conn:
        await audit.record(
            conn,
            rt.now(),
            f"staff:{member.account.staff_id}",
            "staff_access",
            subject=subject,
            new=f"console:{what}",
        )


async def patients(request: web.Request) -> web.Response:
    member = await require(request, permissions.VIEW)
    rt = console(request).rt
    _ = t(member.account.lang)
    rows = []
    for s in await overview.summaries(rt):
        p = s.patient
        rows.append(
            {
                "subject": p.subject,
                "day": s.study_day,
                "phase": phase_name(_, rt.study, s.study_day),
                "status": _(STATUS_LABELS.get(p.status, p.status)),
                "channel": getattr(p, "channel", "telegram"),
                "last": _.short_date(s.last_diary) if s.last_diary else _("none yet"),
                "week": ratio(_, s.compliance.last_7_days),
                "overall": ratio(_, s.compliance.overall),
                "alerts": s.open_alerts,
                "reachable": not p.unreachable,
            }
        )
    await _access(request, member, None, "patients")
    return render(request, "patients.html", rows=rows)


async def patient(request: web.Request) -> web.Response:
    member = await require(request, permissions.VIEW)
    rt = console(request).rt
    _ = t(member.account.lang)
    subject = request.match_info["subject"]
    d = await overview.detail(rt, subject, days=HISTORY_DAYS)
    if d is None:
        text = message(_, "not_found")
        return render(request, "message.html", status=404, title=text, text=text)
    await _access(request, member, subject, "patient")
    s = d.summary
    items = rt.study.items
    diaries = [
        {
            "date": _.short_date(row.occ.local_date),
            "day": row.occ.study_day,
            "form": row.occ.form,
            "status": diary_status(_, row.occ.status),
            "levels": sorted(row.alert_levels),
            "cells": [row.answers.get(i.code, "") for i in items],
        }
        for row in d.days
    ]
    trail = await store.audit_rows(rt.db.conn, store.AuditFilter(subject=subject), limit=200)
    visits = visit_schedule(rt.study, s.patient.injection_date)
    return render(
        request,
        "patient.html",
        p=s.patient,
        day=s.study_day,
        phase=phase_name(_, rt.study, s.study_day),
        state=_(STATUS_LABELS.get(s.patient.status, s.patient.status)),
        compliance={
            "week": ratio(_, s.compliance.last_7_days),
            "month": ratio(_, s.compliance.last_30_days),
            "overall": ratio(_, s.compliance.overall),
        },
        baseline=baseline_line(_, rt.study, d.baseline),
        alerts=[{"id": a.id, "line": list_line(_, rt.study, a, rt.now())} for a in d.alerts],
        items=[i.code for i in items],
        diaries=diaries,
        visits=[
            {
                "name": _(v.name),
                "day": v.day,
                "target": _.short_date(v.target_date),
                "window": f"{_.short_date(v.window_start)} – {_.short_date(v.window_end)}",
            }
            for v in visits
        ],
        trail=trail,
    )


async def chart(request: web.Request) -> web.Response:
    member = await require(request, permissions.VIEW)
    rt = console(request).rt
    subject = request.match_info["subject"]
    try:
        png = await patient_chart(rt, subject, member.account.lang)
    except UnknownSubject:
        raise web.HTTPNotFound() from None
    await _access(request, member, subject, "chart")
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/patients", patients, name="patients")
    app.router.add_get(f"/patients/{SUBJECT}", patient, name="patient")
    app.router.add_get(f"/patients/{SUBJECT}/chart.png", chart, name="chart")
