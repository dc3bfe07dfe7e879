"""Mistakes in a submitted diary: the patient asks, the site corrects, the audit keeps both.

A patient never edits a submitted entry (C-Path/eClinical Forum: corrections of patient data go
through the site). "I made a mistake" on the thank-you lets them describe the problem; that
becomes a review alert. Staff then apply the correction with a reason (`diarybot entry
correct`); the answers table keeps the current value and the audit trail the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiosqlite

from bot.clock import iso
from bot.domain import questionnaire as q
from bot.domain.rules import EVALUATED_LEVELS, Finding
from bot.domain.study import Item
from bot.domain.textsafety import has_xml_forbidden
from bot.escalation import service
from bot.escalation.views import DATA_CHANGE
from bot.i18n import N_, Refusal, t
from bot.messenger import Buttons
from bot.services.diary import Outcome, drop_no_longer_applying
from bot.services.runtime import Runtime
from conversations.callbacks import make
from storage import alerts as store
from storage import audit, repo

AREA = "dc"  # callback area of the patient's data-change buttons
PENDING_FOR = timedelta(minutes=30)  # a description typed later is probably something else
REASON = N_("Data-change request from the patient")


def _who(patient: repo.Patient) -> str:
    return f"patient:{patient.id}"


def mistake_button(lang: str | None, occ_id: int) -> Buttons:
    _ = t(lang)
    return [[(_("I made a mistake"), make(AREA, "new", occ_id))]]


async def on_submit(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    occ: repo.OccRow,
    answers: dict[str, str],
    outcome: Outcome,
) -> None:
    """Put "I made a mistake" under the thank-you of every submitted diary."""
    rows = outcome.extra.setdefault("buttons", [])
    assert isinstance(rows, list)
    rows.extend(mistake_button(patient.lang, occ.id))


async def start_request(rt: Runtime, patient: repo.Patient, occ_id: int) -> bool:
    """The patient tapped "I made a mistake": wait for their description. False: stale button."""
    async with rt.db.transaction() as conn:
        occ = await repo.occurrence(conn, occ_id)
        if occ is None or occ.patient_id != patient.id or occ.status != "completed":
            return False
        await store.set_pending(conn, _who(patient), "data_change", occ.id, rt.now())
    return True


async def cancel_request(rt: Runtime, patient: repo.Patient) -> None:
    async with rt.db.transaction() as conn:
        await store.clear_pending(conn, _who(patient))


@dataclass(frozen=True)
class Described:
    status: str  # none | ok | empty | too_long | control_chars
    alert_id: int | None = None


async def describe(rt: Runtime, patient: repo.Patient, text: str) -> Described:
    """Typed text while a data-change request waits for its description.

    `none`: no request is waiting (expired, or the patient moved on to a diary since), so the
    text is for someone else. Otherwise the request becomes (or updates) a review alert.
    """
    now = rt.now()
    if await store.get_pending(rt.db.conn, _who(patient)) is None:
        return Described("none")  # the common case, answered without taking the write lock
    async with rt.db.transaction() as conn:
        pending = await store.get_pending(conn, _who(patient))
        if pending is None or pending.kind != "data_change":
            return Described("none")
        moved_at = await repo.diary_session_updated_at(conn, patient.id)
        moved_on = moved_at is not None and moved_at > pending.created_at
        if now - pending.created_at > PENDING_FOR or moved_on:
            await store.clear_pending(conn, _who(patient))
            return Described("none")
        if has_xml_forbidden(text):
            return Described("control_chars")
        text = text.strip()
        if not text:
            return Described("empty")
        if len(text) > rt.study.max_free_text:
            return Described("too_long")
        occ = await repo.occurrence(conn, pending.target)
        assert occ is not None
        await store.clear_pending(conn, _who(patient))
        event = {"key": occ.key, "day": occ.study_day, "text": text, "at": iso(now)}
        await audit.record(
            conn,
            now,
            f"patient:{patient.subject}",
            "data_change_requested",
            subject=patient.subject,
            entity=occ.key,
            new=text,
        )
        alert, _created = await service.raise_alert(
            rt,
            conn,
            patient,
            rule=DATA_CHANGE,
            level="review",
            reason=REASON,
            event=event,
            study_day=occ.study_day,
            answered_at=now,
            now=now,
        )
    rt.wake_sender()
    return Described("ok", alert.id)


# --------------------------------------------------------------------------- staff correction


class CorrectionError(Refusal):
    """Refused correction; nothing was written. `str(exc)`: one line for the CLI; `text(_)`:
    the same reason in the signed-in member's language (console)."""


@dataclass(frozen=True)
class Signature:
    """An electronic signature over a correction (21 CFR Part 11 §11.50/§11.200): who signed,
    what the signature means; the time is the correction's."""

    staff_id: int
    name: str
    meaning: str


@dataclass(frozen=True)
class Correction:
    subject: str
    key: str
    item: str
    old: str | None
    new: str
    dropped: dict[str, str] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    alerts: list[service.Raised] = field(default_factory=list)  # raised or updated at once


def parse_value(item: Item, value: str, max_text: int) -> str:
    """A staff-entered value in the stored form, validated exactly as a patient's would be."""
    try:
        if item.kind in ("single", "scale", "count"):
            return q.accept_button(item, value.strip())
        if item.kind == "multi":
            chosen = [c.strip() for c in value.split(",") if c.strip()]
            if not chosen:
                raise q.InputError("empty", item)
            for code in chosen:
                q.accept_button(item, code)
            exclusive = {o.code for o in item.options if o.exclusive}
            if len(chosen) > 1 and exclusive & set(chosen):
                only = "/".join(sorted(exclusive))
                raise CorrectionError(
                    f"{item.code}: {only} cannot be combined with others",
                    N_("{item}: {only} cannot be combined with other answers."),
                    item=item.code,
                    only=only,
                )
            order = [o.code for o in item.options]
            return ",".join(sorted(set(chosen), key=order.index))
        return q.parse_typed(item, value, max_text)
    except q.InputError as exc:
        allowed = ", ".join(q.button_values(item))
        raise CorrectionError(
            f"bad value {value!r} for {item.code} ({exc.code}); expected: "
            f"{allowed or f'{item.kind} value'}",
            N_("{value} is not a valid answer to {item}; expected: {allowed}.")
            if allowed
            else N_("{value} is not a valid answer to {item}."),
            value=value,
            item=item.code,
            allowed=allowed,
        ) from None


async def correct_entry(
    rt: Runtime,
    subject: str,
    day: int,
    item_code: str,
    value: str,
    reason: str,
    *,
    actor: str = "cli",
    signature: Signature | None = None,
) -> Correction:
    """Change one answer of a submitted diary, with the reason, in one audited transaction.

    Follow-up answers that no longer apply (dizziness after bleeding is corrected to none) are
    dropped with the same reason; follow-ups that now apply but were never asked are reported,
    not invented. The corrected diary, and the later diaries whose "in a row" rules it can
    change, are re-checked against the rules at once: a threshold crossed raises (or updates)
    its alert now, with the correction as the time of awareness; a finding no longer met is
    noted on its card (staff decide). Both are returned so the command can print them.
    """
    if not reason.strip():
        raise CorrectionError("a reason is required (--reason)", N_("Please give a reason."))
    try:
        item = rt.study.item(item_code)
    except KeyError:
        codes = ", ".join(i.code for i in rt.study.items)
        raise CorrectionError(
            f"unknown item {item_code!r}; items: {codes}",
            N_("Unknown item {item}; the items are: {codes}."),
            item=item_code,
            codes=codes,
        ) from None
    new = parse_value(item, value, rt.study.max_free_text)
    now = rt.now()
    async with rt.db.transaction() as conn:
        patient = await repo.patient_by_subject(conn, subject)
        if patient is None:
            raise CorrectionError(
                f"no subject {subject}", N_("There is no patient {subject}."), subject=subject
            )
        found = await repo.submitted_on_day(conn, patient.id, day)
        if found is None:
            raise CorrectionError(
                f"{subject} has no answered diary on Day {day}",
                N_(
                    "{subject} has no answered diary (submitted or closed incomplete) on Day {day}."
                ),
                subject=subject,
                day=day,
            )
        occ = found
        answers = await repo.answers(conn, occ.id)
        old = answers.get(item.code)
        if old == new:
            raise CorrectionError(
                f"{item.code} on Day {day} is already {new!r}",
                N_("{item} on Day {day} is already {value}."),
                item=item.code,
                day=day,
                value=new,
            )
        changed = {**answers, item.code: new}
        if not q.applicable(item, occ.study_day, changed):
            raise CorrectionError(
                f"{item.code} is not asked in this diary (Day {day})",
                N_("{item} is not asked in this diary (Day {day})."),
                item=item.code,
                day=day,
            )
        await repo.save_corrected_answer(conn, occ.id, item.code, new, now)
        await audit.record(
            conn,
            now,
            actor,
            "answer_corrected",
            subject=subject,
            entity=f"{occ.key}/{item.code}",
            old=old,
            new=new,
            reason=reason,
        )
        if signature is not None:
            await audit.record(
                conn,
                now,
                f"staff:{signature.staff_id}",
                "e_signature",
                subject=subject,
                entity=f"{occ.key}/{item.code}",
                new={"signer": signature.name, "meaning": signature.meaning},
                reason=reason,
            )
        kept, dropped = await drop_no_longer_applying(
            conn, rt.study, occ, changed, now, actor=actor, subject=subject,
            reason=f"no longer applies after correcting {item.code}: {reason}",
        )  # fmt: skip
        unanswered = [
            it.code
            for it in q.applicable_items(rt.study, occ.study_day, kept)
            if it.code not in kept
        ]
        findings, raised = await service.evaluate_and_apply(
            rt, conn, patient, occ, kept, levels=EVALUATED_LEVELS, state=_state(occ), now=now,
            corrected=True,
        )  # fmt: skip
        raised += await _later_diaries(rt, conn, patient, occ, now)
    rt.wake_sender()
    return Correction(subject, occ.key, item.code, old, new, dropped, unanswered, findings, raised)


def _state(occ: repo.OccRow) -> str:
    return "submitted" if occ.status == "completed" else "incomplete"


async def _later_diaries(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    occ: repo.OccRow,
    now: datetime,
) -> list[service.Raised]:
    """Re-run the rules on the later diaries a corrected one can change. A baseline diary
    (before Day 0) changes the baseline itself, so every diary from Day 0 on; any other diary
    only the "N in a row" rules of the next N-1 diaries that are data (submitted or incomplete).
    (docs/clinical-decisions.md)"""
    if occ.study_day < 0:
        later = await repo.data_diaries_from(conn, patient.id, 0)
    else:
        reach = max((r.consecutive for r in rt.study.rules), default=1) - 1
        if reach <= 0:
            return []
        later = await repo.data_diaries_after(conn, patient.id, occ.study_day, reach)
    return await recheck(rt, conn, patient, later, now)


async def recheck(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    diaries: list[repo.OccRow],
    now: datetime,
) -> list[service.Raised]:
    """Re-run every rule on stored diaries that are data (submitted or incomplete) after the
    site changed something they depend on (a corrected answer, a re-anchored Day 0), inside
    the caller's transaction. A threshold now crossed raises (or joins) its alert with `now`
    as the time of awareness; a finding no longer met is noted on its card (staff decide);
    an unchanged outcome changes nothing (one card per diary and level, bot/domain/findings.py).
    """
    raised: list[service.Raised] = []
    for diary in diaries:
        answers = await repo.answers(conn, diary.id)
        _findings, done = await service.evaluate_and_apply(
            rt, conn, patient, diary, answers, levels=EVALUATED_LEVELS, state=_state(diary),
            now=now, corrected=True,
        )  # fmt: skip
        raised += done
    return raised
