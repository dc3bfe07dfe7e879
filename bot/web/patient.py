"""The patient's pages under /p/<token>: year-of-birth check, the diary, next diary, settings, help.

Every form is a plain POST answered by a redirect (POST-redirect-GET): no JavaScript is needed.
A diary step calls the same DiaryService as the Telegram handlers (through the channel-neutral
`diary_screen.perform`) and is rendered from the same `Screen`. Every page view and every
answer is audited with channel "web"; messages carry only short codes (?m=closed), never data.
One view is not audited again: the page a diary post redirects to, on the device that posted,
when it shows the very screen the post's `web_answer` entry records (`Followed`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiosqlite
from aiohttp import web

from bot.clock import iso
from bot.domain.study import parse_hhmm
from bot.escalation.safety import record_shown
from bot.i18n import LOCALES, N_, T, t
from bot.services import diary_screen as ds
from bot.services import patient_settings
from bot.services.diary import DiaryService, Outcome
from bot.services.runtime import Runtime
from bot.web import links
from bot.web.server import (
    DIARY_KEY,
    LINK_COOKIE,
    RT_KEY,
    csrf,
    is_https,
    message_page,
    phones,
    rate_limit,
    render,
)
from storage import audit, repo
from storage import web as store

log = logging.getLogger(__name__)

TOKEN = "{token:[A-Za-z0-9_-]{20,64}}"
DEVICE_COOKIE = "dv"
DEVICE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie
SCREENS = ("question", "updated", "review")  # outcomes drawn as a diary screen
# ?m= codes: what the page says above its content after a redirect.
NOTICES = {
    "closed": N_("This diary is closed now, so it can no longer be filled in. That's all right."),
    "done": N_("This diary is already done. Thank you!"),
    "stale": N_("This page was out of date. Here is the current one."),
    "not_yours": N_("This is not available."),
    "saved": N_("Saved."),
    "bad": N_("Please choose one of the options."),
}
from bot.web.server import NO_LINK  # noqa: E402

LOCKED = N_(
    "This link is locked because the year of birth was wrong too many times. "
    "Please call your study team."
)
WRONG_YEAR = N_("That is not the year we have. {tries} tries left.")


def build() -> web.Application:
    app = web.Application(middlewares=[rate_limit, csrf])
    app[FOLLOWED_KEY] = Followed()
    app.router.add_get(f"/{TOKEN}", home)
    app.router.add_post(f"/{TOKEN}/year", year)
    app.router.add_post(f"/{TOKEN}/act", act)
    app.router.add_get(f"/{TOKEN}/done", done)
    app.router.add_get(f"/{TOKEN}/next", next_diary)
    app.router.add_get(f"/{TOKEN}/settings", settings)
    app.router.add_post(f"/{TOKEN}/settings", save_settings)
    app.router.add_get(f"/{TOKEN}/help", help_page)
    return app


@dataclass(frozen=True)
class Visit:
    rt: Runtime
    token: str
    link: store.LinkRow
    patient: repo.Patient
    verified: bool
    device: str  # the hash of this device's cookie

    @property
    def base(self) -> str:
        return f"/p/{self.token}"

    @property
    def locale(self) -> str:
        return self.patient.lang if self.patient.lang in LOCALES else "zh_Hans"

    @property
    def _(self) -> T:
        return t(self.locale)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("ascii", "replace")).hexdigest()


async def visit(request: web.Request) -> Visit | web.Response:
    """Who this link is, and whether this device has passed the year-of-birth check; or the
    page that refuses it (unknown or revoked link, locked link, ended follow-up)."""
    rt: Runtime = request.config_dict[RT_KEY]
    token = request.match_info["token"]
    device = request.cookies.get(DEVICE_COOKIE, "")
    device_hash = _hash(device[:64])
    found = await store.visit(rt.db.conn, links.token_hash(token), device_hash)
    if found is None or found[0].revoked or found[1].channel != "web":
        log.info("web: an unknown or revoked link was opened")
        return _refusal(request, rt, 404, NO_LINK)
    link, patient, device_ok = found
    v = Visit(rt, token, link, patient, verified=bool(device) and device_ok, device=device_hash)
    if link.locked:
        return _refusal(request, rt, 403, LOCKED, v.locale)
    return v


def _refusal(
    request: web.Request, rt: Runtime, status: int, msgid: str, locale: str = "zh_Hans"
) -> web.Response:
    return message_page(request, locale, [t(locale)(msgid)], status=status)


PatientPage = Callable[[web.Request, Visit], Awaitable[web.StreamResponse]]


def verified_only(handler: PatientPage) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page or form for a device that passed the year-of-birth check: any other request is
    refused (unknown, revoked or locked link) or sent to the link, which asks for the year."""

    async def checked(request: web.Request) -> web.StreamResponse:
        v = await visit(request)
        if isinstance(v, web.Response):
            return v
        if not v.verified:
            return redirect(v.base)
        return await handler(request, v)

    return checked


# What a diary screen is, as the audit entries record it: (status, diary, item).
Shown = tuple[str, str | None, str | None]


def shown(o: Outcome) -> Shown:
    status = "question" if o.status == "updated" else o.status  # ticks changed: the same question
    return (status, o.occ.key if o.occ else None, o.item.code if o.item else None)


class Followed:
    """What each device's last diary post led to, until the page it redirects to is opened.

    That page is not audited again when it shows exactly the screen the post's `web_answer`
    entry already records (status, diary, item), on the same device, within `ttl` seconds: the
    entry would repeat the one before it. A view from another device, without a preceding
    post, later, or of anything else is audited as always. In memory: one process serves the
    study, and after a restart the next view is simply audited.
    """

    MAX = 20000

    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.posts: dict[tuple[int, str], tuple[Shown, float]] = {}

    def note(self, v: Visit, screen: Shown) -> None:
        self.note_for((v.link.id, v.device), screen)

    def take(self, v: Visit) -> Shown | None:
        return self.take_for((v.link.id, v.device))

    def note_for(self, device: tuple[int, str], screen: Shown) -> None:
        """`device`: (the link's id, the hash of the device cookie)."""
        now = self.clock()
        if len(self.posts) >= self.MAX:
            old = [k for k, (_, at) in self.posts.items() if now - at > self.ttl]
            for k in old or list(self.posts)[: self.MAX // 2]:
                del self.posts[k]
        self.posts[device] = (screen, now)

    def take_for(self, device: tuple[int, str]) -> Shown | None:
        found = self.posts.pop(device, None)
        if found is None or self.clock() - found[1] > self.ttl:
            return None
        return found[0]


FOLLOWED_KEY = web.AppKey("followed", Followed)


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


async def _audit_view(conn: aiosqlite.Connection, v: Visit, page: str, **more: object) -> None:
    await audit.record(
        conn,
        v.rt.now(),
        f"patient:{v.patient.subject}",
        "web_view",
        subject=v.patient.subject,
        entity="web",
        new={"channel": "web", "page": page, **more},
    )


async def view(v: Visit, page: str) -> None:
    async with v.rt.db.transaction() as conn:
        await _audit_view(conn, v, page)


def page(
    request: web.Request, v: Visit, template: str, status: int = 200, **context: object
) -> web.Response:
    context.setdefault("nav", True)
    return render(request, template, v.locale, status=status, base=v.base, **context)


# ------------------------------------------------------------------ year of birth
async def ask_year(request: web.Request, v: Visit, error: str = "") -> web.Response:
    await view(v, "year")
    _ = v._
    tries = links.MAX_TRIES - v.link.failures
    return page(
        request,
        v,
        "year.html",
        error=_(error, tries=tries) if error else "",
        nav=False,
    )


async def year(request: web.Request) -> web.StreamResponse:
    v = await visit(request)
    if isinstance(v, web.Response):
        return v
    if v.verified:
        return redirect(v.base)
    form = await request.post()
    raw = str(form.get("year", "")).strip()
    rt = v.rt
    now = rt.now()
    digits = raw.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    async with rt.db.transaction() as conn:
        link = await store.link_by_hash(conn, links.token_hash(v.token))
        if link is None or link.revoked or link.locked:
            return redirect(v.base)
        expected = await store.birth_year(conn, v.patient.id)
        if (
            digits.isdigit()
            and len(digits) == 4
            and expected is not None
            and int(digits) == expected
        ):
            device = secrets.token_urlsafe(32)
            await store.insert_device(conn, _hash(device), link.id, now)
            await store.set_failures(conn, link.id, 0, None)
            await audit.record(
                conn,
                now,
                f"patient:{v.patient.subject}",
                "web_device_added",
                subject=v.patient.subject,
                entity="web",
                new={"channel": "web"},
            )
            response = redirect(v.base)
            for name, value, path in ((DEVICE_COOKIE, device, v.base), (LINK_COOKIE, v.token, "/")):
                response.set_cookie(
                    name,
                    value,
                    path=path,
                    max_age=DEVICE_MAX_AGE,
                    httponly=True,
                    samesite="Lax",
                    secure=is_https(request, rt),
                )
            return response
        failures = link.failures + 1
        locked = failures >= links.MAX_TRIES
        await store.set_failures(conn, link.id, failures, now if locked else None)
        await audit.record(
            conn,
            now,
            f"patient:{v.patient.subject}",
            "web_link_locked" if locked else "web_year_refused",
            subject=v.patient.subject,
            entity="web",
            new={"channel": "web", "failures": failures},
        )
        if locked:
            from bot.escalation import service
            from bot.escalation.views import WEB_LOCKED

            await service.raise_compliance(
                rt, conn, v.patient, WEB_LOCKED, links.LOCKED_REASON, {"at": iso(now)}
            )
    rt.wake_sender()
    if locked:
        return redirect(v.base)
    return redirect(f"{v.base}?y=wrong")


# ------------------------------------------------------------------ the diary
async def home(request: web.Request) -> web.StreamResponse:
    v = await visit(request)
    if isinstance(v, web.Response):
        return v
    if not v.verified:
        wrong = request.query.get("y") == "wrong"
        msg = WRONG_YEAR if wrong else ""
        return await ask_year(request, v, msg)
    _ = v._
    svc: DiaryService = request.config_dict[DIARY_KEY]
    notice = request.query.get("m", "")
    note = _(NOTICES[notice]) if notice in NOTICES else ""
    if v.patient.status in ("withdrawn", "completed", "paused", "invited"):
        await view(v, "status")
        text = ds.next_due(_, v.patient, None)
        return page(
            request, v, "message.html", title="", lines=text.split("\n"), phones=phones(v.rt, _)
        )

    # Right after this device's own diary post: the screen it recorded is read without the
    # write lock, and its view not audited again if it is still the one shown. A page with the
    # safety text records its showing together with its own view, as always.
    followed = request.config_dict[FOLLOWED_KEY].take(v)
    if notice == "safety":
        followed = None
    outcome = None
    if followed is not None and followed[0] == "question":
        outcome = await svc.current(v.patient)
        if outcome is not None and shown(outcome) != followed:
            outcome = None

    async def audited(conn: aiosqlite.Connection, outcome: Outcome) -> None:
        if followed is None or shown(outcome) != followed:  # else: its post recorded it
            await _audit_view(
                conn,
                v,
                "diary",
                status=outcome.status,
                diary=outcome.occ.key if outcome.occ else None,
                item=outcome.item.code if outcome.item else None,
            )
        if notice == "safety" and outcome.status in SCREENS and outcome.occ is not None:
            # The safety text above this screen (below): which approved version, audited.
            await record_shown(
                conn, v.rt.now(), v.rt.study, v.patient, outcome.occ, _.locale,
                channel="web", moment="answer",
            )  # fmt: skip

    if outcome is None:
        outcome = await svc.open(v.patient, respond=audited)
    rt = v.rt
    if outcome.status in SCREENS:
        screen = ds.screen(_, rt.study, v.patient, outcome)
        error = request.query.get("e", "")
        error_text = ""
        if error in ds.ERRORS:
            error_text = ds.error_text(
                _, rt.study, Outcome("invalid", outcome.occ, item=outcome.item, error=error)
            )
        safety: list[str] = []
        if notice == "safety":
            from bot.escalation.views import safety_text

            safety = safety_text(_, rt.study).split("\n")
        return page(
            request,
            v,
            "diary.html",
            s=screen,
            note=note,
            error=error_text,
            safety=safety,
            phones=phones(rt, _) if safety else [],
        )
    text = ds.status_text(_, v.patient, outcome)
    return page(
        request,
        v,
        "message.html",
        title="",
        note=note if notice not in ("closed", "done") else "",
        lines=text.split("\n"),
        phones=[],
    )


@verified_only
async def act(request: web.Request, v: Visit) -> web.StreamResponse:
    """A diary form: a tapped choice (`do`: the encoded Action) or a typed answer (`text`)."""
    svc: DiaryService = request.config_dict[DIARY_KEY]
    form = await request.post()
    patient = v.patient

    async def respond(conn: aiosqlite.Connection, outcome: Outcome) -> None:
        """Inside the step's transaction: the web audit entry, and the after-submit notice."""
        await audit.record(
            conn,
            v.rt.now(),
            f"patient:{patient.subject}",
            "web_answer",
            subject=patient.subject,
            entity="web",
            new={
                "channel": "web",
                "status": outcome.status,
                "diary": outcome.occ.key if outcome.occ else None,
                "item": outcome.item.code if outcome.item else None,
            },
        )
        if outcome.occ is None:
            return
        urgent = bool(outcome.extra.get("messages"))  # the safety text (escalation)
        if outcome.status == "submitted":
            before = await store.notice(conn, patient.id)  # an urgent answer before Submit
            urgent = urgent or before == (outcome.occ.id, True)
            await store.set_notice(conn, patient.id, outcome.occ.id, urgent, v.rt.now())
        elif urgent:
            await store.set_notice(conn, patient.id, outcome.occ.id, True, v.rt.now())

    text = form.get("text")
    if isinstance(text, str):
        occ_raw, item = str(form.get("occ", "")), str(form.get("item", ""))
        if not occ_raw.isdigit() or not item:
            return redirect(f"{v.base}?m=stale")
        outcome = await svc.typed(patient, text, respond=respond, expect=(int(occ_raw), item))
        if outcome is None:
            outcome = Outcome("stale")
    else:
        action = ds.Action.decode(str(form.get("do", "")))
        if action is None:
            return redirect(f"{v.base}?m=stale")
        outcome = await ds.perform(svc, patient, action, respond=respond)
    v.rt.wake_sender()
    if outcome.occ is not None and outcome.status in ("question", "updated", "review", "submitted"):
        request.config_dict[FOLLOWED_KEY].note(v, shown(outcome))  # committed: see `home`
    return redirect(_after(v, outcome))


def _after(v: Visit, o: Outcome) -> str:
    if o.status == "submitted":
        return f"{v.base}/done"
    if o.status in ("question", "updated", "review") and o.extra.get("messages"):
        return f"{v.base}?m=safety"  # an urgent answer: the safety text above the next screen
    if o.status == "invalid":
        return f"{v.base}?e={o.error or 'use_buttons'}"
    codes = {"closed": "closed", "already_done": "done", "stale": "stale", "not_yours": "not_yours"}
    if o.status in codes:
        return f"{v.base}?m={codes[o.status]}"
    return v.base


@verified_only
async def done(request: web.Request, v: Visit) -> web.StreamResponse:
    """After a submitted diary: thank you, the next diary, and after an urgent answer the
    study's safety text with buttons that call the study team and the emergency number."""
    rt, _ = v.rt, v._
    followed = request.config_dict[FOLLOWED_KEY].take(v)
    notice = await store.notice(rt.db.conn, v.patient.id)
    occ = await repo.occurrence(rt.db.conn, notice[0]) if notice else None
    now = rt.now()
    if notice is None or occ is None or occ.status != "completed" or occ.closes_at <= now:
        return redirect(v.base)
    # Right after its own Submit, with no safety text: the Submit's web_answer entry records
    # this page. With the safety text, the page records its showing with its own view.
    if followed is None or followed[:2] != ("submitted", occ.key) or notice[1]:
        async with rt.db.transaction() as conn:
            await _audit_view(conn, v, "done")
            if notice[1]:  # the safety text on this page (below): which approved version, audited
                await record_shown(
                    conn, now, rt.study, v.patient, occ, _.locale, channel="web", moment="submit"
                )
    nxt = await repo.next_opening(rt.db.conn, v.patient.id, now)
    lines = [_("Thank you! Your diary has been saved."), ds.next_due(_, v.patient, nxt)]
    safety: list[str] = []
    if notice[1]:
        from bot.escalation.views import safety_text

        safety = safety_text(_, rt.study).split("\n")
    return page(
        request,
        v,
        "message.html",
        title="",
        lines=lines,
        safety=safety,
        phones=phones(rt, _) if safety else [],
    )


@verified_only
async def next_diary(request: web.Request, v: Visit) -> web.StreamResponse:
    await view(v, "next")
    _ = v._
    nxt = await repo.next_opening(v.rt.db.conn, v.patient.id, v.rt.now())
    return page(
        request,
        v,
        "message.html",
        title=_("Your next diary"),
        lines=[ds.next_due(_, v.patient, nxt)],
        phones=[],
    )


@verified_only
async def settings(request: web.Request, v: Visit) -> web.StreamResponse:
    await view(v, "settings")
    _ = v._
    notice = request.query.get("m", "")
    return page(
        request,
        v,
        "settings.html",
        note=_(NOTICES[notice]) if notice in ("saved", "bad") else "",
        langs=[("zh_Hans", "中文"), ("en", "English")],
        current_lang=v.locale,
        times=patient_settings.PROMPT_TIMES,
        current_time=v.patient.prompt_time.strftime("%H:%M"),
    )


@verified_only
async def save_settings(request: web.Request, v: Visit) -> web.StreamResponse:
    form = await request.post()
    lang, at = str(form.get("lang", "")), str(form.get("time", ""))
    if lang not in LOCALES or at not in patient_settings.PROMPT_TIMES:
        return redirect(f"{v.base}/settings?m=bad")
    patient = v.patient
    await view(v, "settings_saved")  # the changes themselves are audited by patient_settings
    if lang != patient.lang:
        patient = await patient_settings.set_language(v.rt, patient, lang)
    if at != patient.prompt_time.strftime("%H:%M"):
        patient = await patient_settings.set_prompt_time(v.rt, patient, parse_hhmm(at))
    return redirect(f"{v.base}/settings?m=saved")


@verified_only
async def help_page(request: web.Request, v: Visit) -> web.StreamResponse:
    await view(v, "help")
    _, study = v._, v.rt.study
    lines = [
        _(
            "This is the symptom diary of study {study}: {title}.",
            study=study.id,
            title=_(study.title),
        ),
        _("Your answers go to your study team. This page does not give medical advice."),
        _("Keep this link to yourself: it opens your own diary."),
        _(
            "If you feel very unwell, call {emergency} now (or your local emergency number if "
            "you are outside mainland China), or go to the nearest emergency department.",
            emergency=study.emergency_number,
        ),
    ]
    return page(request, v, "message.html", title=_("Help"), lines=lines, phones=phones(v.rt, _))
