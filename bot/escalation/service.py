"""The life of an alert: raised (or updated), delivered, re-sent, acknowledged, triaged, closed.

Every function that changes an alert runs inside the caller's transaction, records an audit
entry for the change (who and when), and enqueues the messages that show it, so an alert is
never changed without the team seeing it, nor shown in a state that was not stored. Callers
wake the sender after commit (`rt.wake_sender()`); the scheduler's tick does so itself.

One open alert per patient and rule: "open" means nobody has acknowledged it. While it is open,
the same rule firing again edits every copy (noting the new answers) instead of stacking another
message; once someone has taken responsibility, a new finding is a new alert that needs its own
acknowledgement.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from bot import messenger
from bot.channels import alerts as alert_routes
from bot.channels.patients import notify_patient
from bot.clock import from_iso, iso
from bot.domain import questionnaire as q
from bot.domain.findings import Card, by_level, route
from bot.domain.rules import (
    EVALUATED_LEVELS,
    Diary,
    Finding,
    baseline_means,
    evaluate,
    missing_baseline_rules,
)
from bot.escalation import safety
from bot.escalation.views import (
    NON_CLINICAL,
    TRIAGE_CHOICES,
    alert_card,
    safety_text,
)
from bot.i18n import t
from bot.messenger import Priority
from bot.services.diary import Outcome
from bot.services.runtime import Runtime
from storage import alerts as store
from storage import audit, repo
from storage import channels as channel_store
from storage.alerts import Alert

log = logging.getLogger(__name__)

MAX_EVENTS = 30  # events kept on one alert (the audit trail keeps every update anyway)
ADDED_COPIES = "added_copies"  # details: copy id → the findings that copy was sent to announce


def _entity(alert_id: int) -> str:
    return f"alert:{alert_id}"


def _priority(level: str) -> Priority:
    return Priority.URGENT if level == "urgent" else Priority.REPLY


def _staff_actor(staff_id: int) -> str:
    return f"staff:{staff_id}"


# --------------------------------------------------------------------------- raising


async def raise_alert(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    *,
    rule: str,
    level: str,
    reason: str,
    event: dict[str, Any],
    study_day: int | None,
    answered_at: datetime | None,
    now: datetime,
    no_baseline: bool = False,
    card: dict[str, Any] | None = None,
) -> tuple[Alert, bool]:
    """Raise an alert, or update the open one for this patient and rule. (alert, created).

    With `card` (the details of a diary's card, see `apply_findings`): always a new alert.
    """
    existing = None if card is not None else await store.open_for(conn, patient.id, rule)
    if existing is not None:
        events = [*existing.events, event][-MAX_EVENTS:]
        details = {**existing.details, "events": events, "no_baseline": no_baseline}
        await store.set_fields(
            conn,
            existing.id,
            details=details,
            study_day=study_day,
            answered_at=answered_at,
            updated_at=now,
            updates=existing.updates + 1,
        )
        await audit.record(
            conn,
            now,
            "system",
            "alert_updated",
            subject=patient.subject,
            entity=_entity(existing.id),
            new={"rule": rule, "event": event},
        )
        await refresh(rt, conn, existing.id, now)
        updated = await store.get(conn, existing.id)
        assert updated is not None
        return updated, False

    resend_at = (
        now + timedelta(minutes=rt.study.resend_every_minutes) if level == "urgent" else None
    )
    alert_id = await store.insert(
        conn,
        patient_id=patient.id,
        rule=rule,
        level=level,
        reason=reason,
        details=card or {"events": [event], "no_baseline": no_baseline},
        study_day=study_day,
        answered_at=answered_at,
        now=now,
        next_resend_at=resend_at,
    )
    await audit.record(
        conn,
        now,
        "system",
        "alert_raised",
        subject=patient.subject,
        entity=_entity(alert_id),
        new={"rule": rule, "level": level, "event": event},
    )
    alert = await store.get(conn, alert_id)
    assert alert is not None
    await deliver(rt, conn, alert, "alert", now)
    return alert, True


async def raise_compliance(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    rule_code: str,
    reason_msgid: str,
    details: dict[str, Any],
) -> int:
    """Raise (or update) a compliance alert, e.g. missed diaries or a patient who blocked the bot.

    For other features: call inside your transaction; `reason_msgid` is an English msgid marked
    with `N_`; `details` is stored as the alert's latest event (MISSED alerts read `days`).
    Returns the alert id.
    """
    now = rt.now()
    alert, _created = await raise_alert(
        rt,
        conn,
        patient,
        rule=rule_code,
        level="compliance",
        reason=reason_msgid,
        event=details,
        study_day=study_day_today(rt, patient),
        answered_at=None,
        now=now,
    )
    return alert.id


def study_day_today(rt: Runtime, patient: repo.Patient) -> int:
    return (rt.local_today(patient.timezone) - patient.injection_date).days


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Recipient:
    chat_id: int
    staff_id: int | None
    lang: str


async def recipients(
    rt: Runtime, conn: aiosqlite.Connection, *, investigators: bool
) -> list[Recipient]:
    """Every active coordinator, the study-team group, and (on escalation) every investigator.

    A study without coordinators or group still hears about an alert: the investigators, then
    the admins, get it rather than nobody.
    """
    staff = await repo.active_staff(conn)
    out = [
        Recipient(s.telegram_id, s.telegram_id, s.lang) for s in staff if s.role == "coordinator"
    ]
    group = await repo.meta_get(conn, "staff_group")
    if group:
        out.append(Recipient(int(group), None, rt.study.languages[0]))
    if investigators or not out:
        out += [
            Recipient(s.telegram_id, s.telegram_id, s.lang)
            for s in staff
            if s.role == "investigator"
        ]
    if not out:
        out = [Recipient(s.telegram_id, s.telegram_id, s.lang) for s in staff]
    seen: set[int] = set()
    unique = []
    for r in out:
        if r.chat_id not in seen:
            seen.add(r.chat_id)
            unique.append(r)
    return unique


async def _names(conn: aiosqlite.Connection, alert: Alert) -> dict[int, str]:
    return await store.staff_names(conn, alert.staff_ids())


async def deliver(
    rt: Runtime,
    conn: aiosqlite.Connection,
    alert: Alert,
    kind: str,
    now: datetime,
    *,
    added: tuple[str, ...] = (),
) -> list[int]:
    """Send a new copy of the alert to every recipient; returns their chat ids.

    `added` (kind "alert"): findings that just joined a card already sent; the new copy
    notifies (an edit does not) and its first line says what was added. It goes where the card
    has gone: the coordinators, the group and every route, and the investigators once the card
    was re-sent to them."""
    escalated = kind in ("resend", "sae") or (bool(added) and alert.resends > 0)
    targets = await recipients(rt, conn, investigators=escalated)
    names = await _names(conn, alert)
    copy_ids: list[int] = []
    for r in targets:
        copy = await store.add_copy(conn, alert.id, r.chat_id, r.staff_id, r.lang, kind, now)
        copy_ids.append(copy.id)
        text, buttons = alert_card(
            t(r.lang), rt.study, alert, kind=kind, now=now, names=names, added=added
        )
        await messenger.enqueue(
            conn,
            now,
            r.chat_id,
            text,
            buttons=buttons,
            priority=_priority(alert.level),
            ref=copy.ref,
        )
    if added and copy_ids:  # these copies keep saying what was added when edited later
        was = dict(alert.details.get(ADDED_COPIES, {}))
        was.update({str(i): list(added) for i in copy_ids})
        await store.set_fields(conn, alert.id, details={**alert.details, ADDED_COPIES: was})
    # The routes beyond Telegram (WeCom, on-call SMS, e-mail) get the same copy.
    await alert_routes.on_alert(rt, conn, alert, kind, now, names, added=added)
    chats = [r.chat_id for r in targets]
    action = {"alert": "alert_delivered", "resend": "alert_resent", "sae": "alert_sae_reminder"}
    shown: dict[str, Any] = {"chats": chats}
    if added:
        shown["added"] = list(added)
    await audit.record(
        conn,
        now,
        "system",
        action.get(kind, "alert_shown"),
        subject=alert.subject,
        entity=_entity(alert.id),
        new=shown,
    )
    if not targets:
        log.error("alert %s has no recipient: no active staff and no group", alert.id)
    return chats


async def show(
    rt: Runtime, conn: aiosqlite.Connection, alert: Alert, staff: repo.Staff, now: datetime
) -> None:
    """One more copy, in a staff member's own chat (from /alerts); edited like the others."""
    copy = await store.add_copy(
        conn, alert.id, staff.telegram_id, staff.telegram_id, staff.lang, "show", now
    )
    names = await _names(conn, alert)
    text, buttons = alert_card(t(staff.lang), rt.study, alert, kind="show", now=now, names=names)
    await messenger.enqueue(
        conn, now, staff.telegram_id, text, buttons=buttons, priority=Priority.REPLY, ref=copy.ref
    )


async def refresh(
    rt: Runtime,
    conn: aiosqlite.Connection,
    alert_id: int,
    now: datetime,
    *,
    latest_only: bool = False,
) -> None:
    """Edit every copy of the alert to show its current state, each in its reader's language.

    Copies in the chat of someone no longer on the staff are left alone: they get no news.
    `latest_only` (new content from a diary, not a change of state): only the newest copy in
    each chat, so a card updated daily does not re-edit every earlier re-send (a group takes
    20 messages a minute).
    """
    alert = await store.get(conn, alert_id)
    if alert is None:
        return
    names = await _names(conn, alert)
    added_by_copy: dict[str, list[str]] = alert.details.get(ADDED_COPIES, {})
    active = {s.telegram_id for s in await repo.active_staff(conn)}
    copies = await store.copies(conn, alert_id)
    if latest_only:
        newest = {c.chat_id: c for c in copies}  # ordered by id: the last one wins
        copies = [c for c in copies if newest[c.chat_id] is c]
    for copy in copies:
        if copy.staff_id is not None and copy.staff_id not in active:
            continue
        text, buttons = alert_card(
            t(copy.lang), rt.study, alert, kind=copy.kind, now=now, names=names,
            added=added_by_copy.get(str(copy.id), ()),
        )  # fmt: skip
        await messenger.enqueue_edit_ref(
            conn,
            now,
            copy.chat_id,
            copy.ref,
            text,
            buttons=buttons,
            priority=_priority(alert.level),
        )


# --------------------------------------------------------------------------- staff actions


@dataclass(frozen=True)
class Result:
    status: str  # ok | gone | already | not_yet | invalid
    alert: Alert | None = None


# One alert, changed by one staff member: in one transaction, every copy of the card
# refreshed in the same commit; None from the change means it was made.
Change = Callable[[aiosqlite.Connection, Alert, datetime], Awaitable[Result | None]]


async def _staff_change(
    rt: Runtime, staff: repo.Staff, alert_id: int, change: Change, *, ends_input: bool = False
) -> Result:
    """The skeleton of every staff action: load the alert (gone?), change it, refresh every
    copy of its card, wake the sender. `ends_input`: the staff member's awaited text (a note)
    is consumed whatever happens."""
    now = rt.now()
    async with rt.db.transaction() as conn:
        alert = await store.get(conn, alert_id)
        if ends_input:
            await store.clear_pending(conn, _staff_actor(staff.telegram_id))
        if alert is None:
            return Result("gone")
        refused = await change(conn, alert, now)
        if refused is not None:
            return refused
        await refresh(rt, conn, alert.id, now)
        result = Result("ok", await store.get(conn, alert.id))
    rt.wake_sender()
    return result


async def _record(
    conn: aiosqlite.Connection,
    now: datetime,
    staff: repo.Staff,
    alert: Alert,
    action: str,
    *,
    old: Any = None,
    new: Any = None,
) -> None:
    """An audit entry for a staff member's action on an alert."""
    await audit.record(
        conn,
        now,
        _staff_actor(staff.telegram_id),
        action,
        subject=alert.subject,
        entity=_entity(alert.id),
        old=old,
        new=new,
    )


async def acknowledge(rt: Runtime, staff: repo.Staff, alert_id: int) -> Result:
    """Someone takes responsibility: re-sends stop; compliance alerts need nothing more."""

    async def change(conn: aiosqlite.Connection, alert: Alert, now: datetime) -> Result | None:
        if alert.status != "open":
            return Result("already", alert)
        closes = alert.rule in NON_CLINICAL
        status = "closed" if closes else "acknowledged"
        await store.set_fields(
            conn,
            alert.id,
            status=status,
            acked_by=staff.telegram_id,
            acked_at=now,
            next_resend_at=None,
            updated_at=now,
            closed_at=now if closes else None,
        )
        await _record(conn, now, staff, alert, "alert_acknowledged", old="open", new=status)
        if closes:
            await _record(conn, now, staff, alert, "alert_closed")
        return None

    return await _staff_change(rt, staff, alert_id, change)


async def triage(rt: Runtime, staff: repo.Staff, alert_id: int, code: str) -> Result:
    """Record the triage choice. "Patient contacted" is an action, not a classification: the
    alert stays open for triage after it. A possible SAE starts the sponsor-report clock at the
    moment the team first saw the facts (the acknowledgement), the conservative reading."""

    async def change(conn: aiosqlite.Connection, alert: Alert, now: datetime) -> Result | None:
        if alert.status == "open":
            return Result("not_yet", alert)
        if alert.status != "acknowledged" or alert.triage is not None:
            return Result("already", alert)
        if alert.rule in NON_CLINICAL or (code != "c" and code not in TRIAGE_CHOICES):
            return Result("invalid", alert)
        if code == "c":
            if alert.contacted_at is not None:
                return Result("already", alert)
            await store.set_fields(
                conn, alert.id, contacted_by=staff.telegram_id, contacted_at=now, updated_at=now
            )
            await _record(conn, now, staff, alert, "alert_triaged", new="patient_contacted")
            return None
        value = TRIAGE_CHOICES[code][0]
        fields: dict[str, Any] = {
            "triage": value,
            "triaged_by": staff.telegram_id,
            "triaged_at": now,
            "updated_at": now,
        }
        new: Any = value
        if value == "sae":
            fields["sae_aware_at"] = aware_since(alert) or now
            fields["sae_next_reminder_at"] = now + timedelta(
                minutes=rt.study.sae_reminder_every_minutes
            )
            new = {"triage": value, "aware_at": iso(fields["sae_aware_at"])}
        else:
            fields["status"] = "closed"
            fields["closed_at"] = now
        await store.set_fields(conn, alert.id, **fields)
        await _record(conn, now, staff, alert, "alert_triaged", new=new)
        if value != "sae":
            await _record(conn, now, staff, alert, "alert_closed")
        return None

    return await _staff_change(rt, staff, alert_id, change)


async def sae_reported(rt: Runtime, staff: repo.Staff, alert_id: int) -> Result:
    """ "Reported to sponsor": the SAE reminders stop and the alert is closed."""

    async def change(conn: aiosqlite.Connection, alert: Alert, now: datetime) -> Result | None:
        if not alert.sae_pending:
            return Result("already" if alert.sae_reported_at else "invalid", alert)
        await store.set_fields(
            conn,
            alert.id,
            sae_reported_at=now,
            sae_reported_by=staff.telegram_id,
            sae_next_reminder_at=None,
            status="closed",
            closed_at=now,
            updated_at=now,
        )
        aware = alert.sae_aware_at or now
        new = {"aware_at": iso(aware), "hours_after_awareness": _hours(now - aware)}
        await _record(conn, now, staff, alert, "alert_sae_reported", new=new)
        await _record(conn, now, staff, alert, "alert_closed")
        return None

    return await _staff_change(rt, staff, alert_id, change)


def aware_since(alert: Alert) -> datetime | None:
    """When the team became aware of the facts: a site correction that raised the alert (the
    person correcting knew), else the acknowledgement (the conservative reading)."""
    corrected = alert.details.get("aware_at")
    if corrected:
        aware = from_iso(corrected)
        return min(aware, alert.acked_at) if alert.acked_at else aware
    return alert.acked_at


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


async def add_note(rt: Runtime, staff: repo.Staff, alert_id: int, text: str) -> Result:
    """A free-text note on an acknowledged alert (replaces the shown note; audit keeps all)."""

    async def change(conn: aiosqlite.Connection, alert: Alert, now: datetime) -> Result | None:
        if alert.status == "open":
            return Result("not_yet", alert)
        await store.set_fields(
            conn, alert.id, note=text, note_by=staff.telegram_id, note_at=now, updated_at=now
        )
        await _record(conn, now, staff, alert, "alert_note", old=alert.note, new=text)
        return None

    return await _staff_change(rt, staff, alert_id, change, ends_input=True)


async def open_alerts(conn: aiosqlite.Connection, level: str | None = None) -> list[Alert]:
    """Unacknowledged alerts, oldest first (the daily digest lists the review ones)."""
    return await store.listing(conn, statuses=("open",), level=level)


async def unfinished_alerts(conn: aiosqlite.Connection) -> list[Alert]:
    """Alerts not closed yet (unacknowledged, awaiting triage, SAE not reported), oldest first."""
    return await store.listing(conn, statuses=("open", "acknowledged"))


# --------------------------------------------------------------------------- scheduler duties


async def resend_due(rt: Runtime, now: datetime) -> None:
    """Re-send unacknowledged urgent alerts, now also to the investigators."""
    every = timedelta(minutes=rt.study.resend_every_minutes)
    async with rt.db.transaction() as conn:
        for alert in await store.due(conn, "next_resend_at", now):
            if alert.status != "open" or alert.level != "urgent":
                await store.set_fields(conn, alert.id, next_resend_at=None)
                continue
            assert alert.next_resend_at is not None
            nxt = alert.next_resend_at + every
            while nxt <= now:  # after downtime: one re-send now, then back on the cadence
                nxt += every
            await store.set_fields(conn, alert.id, resends=alert.resends + 1, next_resend_at=nxt)
            await deliver(rt, conn, alert, "resend", now)


async def sae_reminders_due(rt: Runtime, now: datetime) -> None:
    """Remind the team of a possible SAE until someone marks it reported to the sponsor."""
    every = timedelta(minutes=rt.study.sae_reminder_every_minutes)
    async with rt.db.transaction() as conn:
        for alert in await store.due(conn, "sae_next_reminder_at", now):
            if not alert.sae_pending:
                await store.set_fields(conn, alert.id, sae_next_reminder_at=None)
                continue
            assert alert.sae_next_reminder_at is not None
            nxt = alert.sae_next_reminder_at + every
            while nxt <= now:
                nxt += every
            await store.set_fields(
                conn, alert.id, sae_reminders=alert.sae_reminders + 1, sae_next_reminder_at=nxt
            )
            await deliver(rt, conn, alert, "sae", now)


async def next_wake(rt: Runtime, now: datetime) -> datetime | None:
    return await store.next_due(rt.db.conn, now)


# --------------------------------------------------------------------------- diaries → cards
# One card per diary and level (bot/domain/findings.py decides where a finding goes). The rules
# run whenever a diary's findings may change: an answer stored before Submit (urgent rules
# only: a faint patient may never tap Submit), Submit, a diary closing unsubmitted, a site
# correction (that diary and the later ones whose "in a row" rules it can change).


@dataclass(frozen=True)
class Raised:
    """What one evaluation did to one alert (the correction command prints these)."""

    alert_id: int
    level: str
    day: int
    created: bool
    rules: tuple[str, ...]  # findings newly reported on the alert
    withdrawn: tuple[str, ...] = ()  # findings of the diary it no longer meets


async def diaries(conn: aiosqlite.Connection, patient_id: int) -> list[Diary]:
    """The patient's diaries that are data (submitted, or closed incomplete), oldest first."""
    rows = await repo.data_answers(conn, patient_id)
    found: dict[int, tuple[str, int, str, dict[str, str]]] = {}
    for r in rows:
        entry = found.setdefault(r["id"], (r["key"], r["study_day"], r["phase"], {}))
        entry[3][r["item"]] = r["value"]
    return [Diary(key, day, phase, answers) for key, day, phase, answers in found.values()]


def finding_answers(rt: Runtime, finding: Finding, answers: dict[str, str]) -> dict[str, str]:
    """The triggering answers plus their follow-ups (dizziness with bleeding, the described
    problem), in questionnaire order: what staff need to judge, and nothing else."""
    return _rule_answers(rt, finding.items, answers)


def _rule_answers(rt: Runtime, items: tuple[str, ...], answers: dict[str, str]) -> dict[str, str]:
    shown = set(items)
    for item in rt.study.items:
        if item.show_if is not None and item.show_if.item in items:
            shown.add(item.code)
    return {
        it.code: answers[it.code]
        for it in rt.study.items
        if it.code in shown and it.code in answers
    }


def _rule_items(rt: Runtime, codes: list[str]) -> tuple[str, ...]:
    tested: set[str] = set()
    for code in codes:
        rule = rt.study.rule(code)
        if rule is not None:
            tested |= {c.item for c in rule.conditions}
    return tuple(it.code for it in rt.study.items if it.code in tested)


def _study_order(rt: Runtime, codes: set[str] | list[str]) -> list[str]:
    order = {r.code: i for i, r in enumerate(rt.study.rules)}
    return sorted(set(codes), key=lambda c: (order.get(c, len(order)), c))


def _reasons(rt: Runtime, codes: list[str]) -> list[str]:
    out = []
    for code in codes:
        rule = rt.study.rule(code)
        out.append(rule.reason if rule is not None else code)
    return out


async def evaluate_diary(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    occ: repo.OccRow,
    answers: dict[str, str],
    levels: tuple[str, ...] = EVALUATED_LEVELS,
) -> tuple[list[Finding], bool]:
    """Run the study's rules on one diary against the patient's history. (findings, no_baseline)

    With `levels` = urgent only (a diary still being answered), the history is read only when
    an urgent rule that compares with baseline or earlier diaries has its item answered.
    """
    rules = [r for r in rt.study.rules if r.level in levels]
    needs_history = any(
        r.needs_history and any(c.item in answers for c in r.conditions) for r in rules
    )
    if levels != EVALUATED_LEVELS and not needs_history:
        history: list[Diary] = []
        baseline: dict[str, float] = {}
        no_baseline = False
    else:
        history = await diaries(conn, patient.id)
        baseline = baseline_means(rt.study, history)
        no_baseline = bool(missing_baseline_rules(rt.study, baseline))
    current = Diary(occ.key, occ.study_day, occ.phase, answers)
    findings = [f for f in evaluate(rt.study, current, history, baseline) if f.level in levels]
    return findings, no_baseline


def diary_event(alert: Alert, occ: repo.OccRow) -> dict[str, Any] | None:
    """The event of one diary on an alert card (None: the diary is not on it). By occurrence
    id: a re-anchor may re-key an old diary ("daily:2" → "daily:2@2027-01-12")."""
    return next((ev for ev in alert.events if ev.get("occ") == occ.id), None)


def _card(alert: Alert, occ: repo.OccRow) -> Card:
    event = diary_event(alert, occ)
    rules = alert.details.get("rules") or [alert.rule]
    return Card(
        alert.id,
        alert.status == "open",
        frozenset(rules),
        frozenset(event.get("rules", [])) if event else frozenset(),
    )


def _event(
    rt: Runtime,
    occ: repo.OccRow,
    answers: dict[str, str],
    reported: list[str],
    findings: dict[str, Finding],
    old: dict[str, Any] | None,
    *,
    state: str,
    now: datetime,
    corrected: bool,
) -> dict[str, Any]:
    """This diary's event on a card: what it reported, what it still meets, current answers
    (with the value first reported where it changed), its baseline, its state."""
    shown = _rule_answers(rt, _rule_items(rt, reported), answers)
    was: dict[str, str] = dict(old.get("was", {})) if old else {}
    if old:
        for code, value in old.get("answers", {}).items():
            if shown.get(code) != value and code not in was:
                was[code] = value
    was = {code: v for code, v in was.items() if shown.get(code) != v}
    baseline: dict[str, float] = dict(old.get("baseline", {})) if old else {}
    for f in findings.values():
        if f.rule in reported:
            baseline.update(f.baseline)
    event: dict[str, Any] = {
        "occ": occ.id,
        "key": occ.key,
        "day": occ.study_day,
        "rules": reported,
        "current": [r for r in reported if r in findings],
        "answers": shown,
        "baseline": baseline,
        "at": old.get("at", iso(now)) if old else iso(now),
        "state": state,
    }
    if was:
        event["was"] = was
    if (state == "draft" and event["current"] != reported) or (old or {}).get("patient_changed"):
        event["patient_changed"] = True  # changed by the patient before submitting
    before = {k: v for k, v in (old or {}).items() if k != "corrected_at"}
    if corrected and old is not None and not _same(event, before):
        event["corrected_at"] = iso(now)  # what changed, changed by the site's correction
    elif old is not None and old.get("corrected_at"):
        event["corrected_at"] = old["corrected_at"]
    return event


def _with_event(alert: Alert, event: dict[str, Any]) -> list[dict[str, Any]]:
    events = [ev for ev in alert.events if ev.get("occ") != event["occ"]]
    events.append(event)
    events.sort(key=lambda ev: (ev.get("day") is None, ev.get("day") or 0))
    return events[-MAX_EVENTS:]


async def apply_findings(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    occ: repo.OccRow,
    answers: dict[str, str],
    findings: list[Finding],
    *,
    level: str,
    state: str,
    now: datetime,
    no_baseline: bool = False,
    corrected: bool = False,
) -> list[Raised]:
    """Put a diary's current findings of one level on its card (see bot/domain/findings.py):
    raise, update or note what it no longer meets. Inside the caller's transaction."""
    own = await store.diary_alerts(conn, occ.id, level)
    if not findings and not own:
        return []
    others = await store.open_diary_alerts(conn, patient.id, level, NON_CLINICAL)
    seen = {a.id for a in own}
    alerts = {a.id: a for a in [*own, *[a for a in others if a.id not in seen]]}
    cards = [_card(alerts[i], occ) for i in sorted(alerts)]
    by_rule = {f.rule: f for f in findings}
    plan = route([f.rule for f in findings], cards)
    done: list[Raised] = []

    for alert in own:  # the diary's own cards: current answers, state, what no longer holds
        old = diary_event(alert, occ)
        if old is None or alert.id == plan.target:
            continue
        event = _event(
            rt, occ, answers, list(old.get("rules", [])), by_rule, old,
            state=state, now=now, corrected=corrected,
        )  # fmt: skip
        if _same(event, old):
            continue
        await _save_event(rt, conn, patient, alert, event, now, added=[], no_baseline=no_baseline)
        done.append(
            Raised(alert.id, level, occ.study_day, False, (), plan.withdrawn.get(alert.id, ()))
        )

    if plan.new and plan.target is not None:
        alert = alerts[plan.target]
        old = diary_event(alert, occ)
        reported = _study_order(rt, [*(old or {}).get("rules", []), *plan.new])
        event = _event(
            rt, occ, answers, reported, by_rule, old, state=state, now=now, corrected=corrected
        )
        await _save_event(
            rt, conn, patient, alert, event, now, added=list(plan.new), no_baseline=no_baseline,
            corrected=corrected,
        )  # fmt: skip
        earlier = bool(alert.events) and alert.events[0].get("occ") != occ.id
        if plan.fresh and (level == "urgent" or earlier):
            # A finding the card did not show joins a card already sent (an earlier diary's,
            # or an urgent one of this diary raised at an earlier answer): an edit does not
            # notify, so a new copy says what was added. Nothing new (the same findings, a
            # changed answer still meeting them) is only an edit.
            updated = await store.get(conn, alert.id)
            assert updated is not None
            await deliver(rt, conn, updated, "alert", now, added=plan.fresh)
        gone = plan.withdrawn.get(alert.id, ())
        done.append(Raised(alert.id, level, occ.study_day, False, plan.new, gone))
    elif plan.create:
        reported = _study_order(rt, list(plan.new))
        event = _event(
            rt, occ, answers, reported, by_rule, None, state=state, now=now, corrected=corrected
        )
        details: dict[str, Any] = {
            "rules": reported,
            "reasons": _reasons(rt, reported),
            "events": [event],
            "no_baseline": no_baseline,
        }
        if corrected:  # the site learnt it by correcting: awareness starts now
            details["aware_at"] = iso(now)
        first = by_rule[reported[0]]
        alert, _created = await raise_alert(
            rt,
            conn,
            patient,
            rule=first.rule,
            level=level,
            reason=first.reason,
            event=event,
            study_day=occ.study_day,
            answered_at=now,
            now=now,
            card=details,
        )
        await store.link_diary(conn, alert.id, occ.id)
        done.append(Raised(alert.id, level, occ.study_day, True, tuple(reported)))
    return done


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "at"} == {k: v for k, v in b.items() if k != "at"}


async def _save_event(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    alert: Alert,
    event: dict[str, Any],
    now: datetime,
    *,
    added: list[str],
    no_baseline: bool,
    corrected: bool = False,
) -> None:
    """Store a diary's event on an existing card, audit it, and edit every copy."""
    rules = _study_order(rt, [*(alert.details.get("rules") or [alert.rule]), *added])
    details = {
        **alert.details,
        "rules": rules,
        "reasons": _reasons(rt, rules),
        "events": _with_event(alert, event),
        "no_baseline": no_baseline or bool(alert.details.get("no_baseline")),
    }
    if corrected and added and "aware_at" not in details:
        details["aware_at"] = iso(now)
    fields: dict[str, Any] = {"details": details, "updated_at": now}
    if added:
        fields["updates"] = alert.updates + 1
        fields["answered_at"] = now
        if alert.study_day is None or event["day"] >= alert.study_day:
            fields["study_day"] = event["day"]
    await store.set_fields(conn, alert.id, **fields)
    await store.link_diary(conn, alert.id, event["occ"])
    withdrawn = [r for r in event["rules"] if r not in event["current"]]
    await audit.record(
        conn,
        now,
        "system",
        "alert_updated",
        subject=patient.subject,
        entity=_entity(alert.id),
        new={
            "diary": event["key"],
            "added": added,
            "no_longer": withdrawn,
            "state": event["state"],
        },
    )
    await refresh(rt, conn, alert.id, now, latest_only=True)


async def evaluate_and_apply(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    occ: repo.OccRow,
    answers: dict[str, str],
    *,
    levels: tuple[str, ...],
    state: str,
    now: datetime,
    corrected: bool = False,
) -> tuple[list[Finding], list[Raised]]:
    """Evaluate the rules of `levels` on a diary and put the findings on its cards."""
    findings, no_baseline = await evaluate_diary(rt, conn, patient, occ, answers, levels)
    grouped = by_level(findings, levels)
    done: list[Raised] = []
    for level in levels:
        done += await apply_findings(
            rt, conn, patient, occ, answers, grouped[level], level=level, state=state, now=now,
            no_baseline=no_baseline, corrected=corrected,
        )  # fmt: skip
    return findings, done


async def _add_safety_text(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    occ: repo.OccRow,
    outcome: Outcome,
    moment: str,
) -> None:
    """The patient's safety text: in the chat (queued by the diary's reply), and by SMS for a
    web-diary patient (the chat shows it for Telegram ones; the web diary's page shows it and
    records that itself). Each showing is audited with the text's version (`safety`)."""
    _ = t(patient.lang)
    now = rt.now()
    messages = outcome.extra.setdefault("messages", [])
    assert isinstance(messages, list)
    messages.append(safety_text(_, rt.study))
    if patient.channel != "web":
        await safety.record_shown(
            conn, now, rt.study, patient, occ, _.locale, channel="telegram", moment=moment
        )
    row = await channel_store.patient_row(conn, patient.id)
    if await notify_patient(
        conn, now, rt.study, row, "safety", telegram_text=None, priority=Priority.URGENT
    ):
        lang = patient.lang or rt.study.languages[0]  # as notify_patient chose it
        await safety.record_shown(
            conn, now, rt.study, patient, occ, t(lang).locale, channel="sms", moment=moment
        )


async def on_answer(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    occ: repo.OccRow,
    answers: dict[str, str],
    outcome: Outcome,
) -> None:
    """Diary-answer duty (inside the answer step's transaction): the urgent rules run on the
    answers stored so far. A new urgent finding raises (or joins) its alert now, and the
    patient sees the safety text now; a changed answer updates the card it was on."""
    kept = q.clean(rt.study, occ.study_day, answers)
    told = await store.diary_alerts(conn, occ.id, "urgent")
    _findings, done = await evaluate_and_apply(
        rt, conn, patient, occ, kept, levels=("urgent",), state="draft", now=rt.now()
    )
    if any(r.rules for r in done) and not told:  # once while answering; again at Submit
        await _add_safety_text(rt, conn, patient, occ, outcome, "answer")


async def on_submit(
    rt: Runtime,
    conn: aiosqlite.Connection,
    patient: repo.Patient,
    occ: repo.OccRow,
    answers: dict[str, str],
    outcome: Outcome,
) -> None:
    """Diary-submit duty (inside the submit transaction): alerts, and the patient's safety text.
    What the answer steps already raised is not raised again."""
    findings, _done = await evaluate_and_apply(
        rt, conn, patient, occ, answers, levels=EVALUATED_LEVELS, state="submitted", now=rt.now()
    )
    if any(f.level == "urgent" for f in findings):
        await _add_safety_text(rt, conn, patient, occ, outcome, "submit")


async def rules_on_closed(rt: Runtime, now: datetime) -> int:
    """Tick duty: diaries that closed unsubmitted with answers (window over, patient paused or
    withdrawn) get every rule run on what they hold, once. Returns how many diaries."""
    pending = await repo.closed_without_rules(rt.db.conn)
    if not pending:
        return 0
    async with rt.db.transaction() as conn:
        for occ_id in pending:
            occ = await repo.occurrence(conn, occ_id)
            patient = await repo.patient_by_id(conn, occ.patient_id) if occ else None
            if occ is None or patient is None:
                continue
            answers = q.clean(rt.study, occ.study_day, await repo.answers(conn, occ.id))
            await evaluate_and_apply(
                rt, conn, patient, occ, answers, levels=EVALUATED_LEVELS, state="incomplete",
                now=now,
            )  # fmt: skip
            await repo.mark_rules_run(conn, occ.id, now)
    return len(pending)
