"""The diary as a state machine over SQLite: open, answer, review, change, submit.

Every answer is committed before the bot shows the next question, so what the patient saw
acknowledged is on disk. Callback data can be stale (yesterday's buttons) or forged (another
patient's diary): each step checks the occurrence belongs to the caller, is open, and that the
item is the one being asked. The flow itself is derived from the answers (see questionnaire).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import aiosqlite

from bot.domain import questionnaire as q
from bot.domain.study import Item, Study
from bot.services.runtime import Runtime
from storage import audit, repo


@dataclass
class Outcome:
    status: str
    # question | review | submitted | closed | not_open | already_done | stale | not_yours
    # | invalid | updated
    occ: repo.OccRow | None = None
    item: Item | None = None
    answers: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # InputError code for `invalid`
    next_occ: repo.OccRow | None = None
    returning: bool = False
    extra: dict[str, object] = field(default_factory=dict)


# What a step returns: an Outcome (typed text: or None, no question waiting).
StepResult = TypeVar("StepResult", Outcome, Outcome | None)

# A handler's reply to an outcome, queued in the step's own transaction (see "the steps").
Respond = Callable[[aiosqlite.Connection, Outcome], Awaitable[None]]


@dataclass(frozen=True)
class Session:
    occurrence_id: int
    item: str | None
    returning: bool


async def _session(conn: aiosqlite.Connection, patient_id: int) -> Session | None:
    r = await repo.diary_session(conn, patient_id)
    return Session(r["occurrence_id"], r["item"], bool(r["revisiting"])) if r else None


async def _set_session(
    conn: aiosqlite.Connection,
    patient_id: int,
    occ_id: int,
    item: str | None,
    returning: bool,
    now: datetime,
) -> None:
    await repo.save_diary_session(conn, patient_id, occ_id, item, returning, now)


class DiaryService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.study = rt.study
        # Called inside the submit transaction (escalation plugs in here).
        self.on_submit: list = []
        # Called inside an answer step's transaction when a stored answer changed (added,
        # changed or cleared), with the answers stored so far: urgent rules do not wait for
        # Submit (escalation plugs in here). Same signature as on_submit.
        self.on_answer: list = []

    # ------------------------------------------------------------------ helpers
    async def _not_open(self, conn: aiosqlite.Connection, patient: repo.Patient) -> Outcome:
        now = self.rt.now()
        latest = await repo.latest_started(conn, patient.id, now)
        nxt = await repo.next_opening(conn, patient.id, now)
        if latest is not None and latest.status == "completed" and nxt is not None:
            # Done for this window; say so until the next one opens.
            if latest.closes_at > now:
                return Outcome("already_done", latest, next_occ=nxt)
        if (
            latest is not None
            and latest.status == "missed"
            and latest.closes_at > now - (latest.closes_at - latest.opens_at)
        ):
            return Outcome("closed", latest, next_occ=nxt)
        return Outcome("not_open", latest, next_occ=nxt)

    async def _guard(
        self, conn: aiosqlite.Connection, patient: repo.Patient, occ_id: int
    ) -> tuple[repo.OccRow | None, Outcome | None]:
        occ = await repo.occurrence(conn, occ_id)
        if occ is None or occ.patient_id != patient.id:
            return None, Outcome("not_yours")
        if occ.status == "completed":
            nxt = await repo.next_opening(conn, patient.id, self.rt.now())
            return None, Outcome("already_done", occ, next_occ=nxt)
        if not occ.is_open(self.rt.now()):
            nxt = await repo.next_opening(conn, patient.id, self.rt.now())
            return None, Outcome("closed", occ, next_occ=nxt)
        return occ, None

    async def _asked(
        self,
        conn: aiosqlite.Connection,
        patient: repo.Patient,
        occ_id: int,
        item_code: str,
        multi: bool | None,
    ) -> tuple[repo.OccRow, Item, Session] | Outcome:
        """The diary is open and `item_code` is the question being asked (of the kind the
        button is for: `multi` True/False, None for either); otherwise the refusal to show.
        A button from an earlier question or diary is "stale" and changes nothing."""
        occ, refusal = await self._guard(conn, patient, occ_id)
        if refusal:
            return refusal
        assert occ is not None
        session = await _session(conn, patient.id)
        if session is None or session.occurrence_id != occ.id or session.item != item_code:
            return Outcome("stale", occ)
        item = self.study.item(item_code)
        if multi is not None and (item.kind == "multi") != multi:
            return Outcome("stale", occ)
        return occ, item, session

    async def _advance(
        self, conn: aiosqlite.Connection, patient: repo.Patient, occ: repo.OccRow
    ) -> Outcome:
        """Move to the next unanswered item, or to review; persist where we are."""
        answers = await repo.answers(conn, occ.id)
        item = q.next_item(self.study, occ.study_day, answers)
        await _set_session(
            conn, patient.id, occ.id, item.code if item else None, False, self.rt.now()
        )
        if item is None:
            return Outcome("review", occ, answers=q.clean(self.study, occ.study_day, answers))
        return Outcome("question", occ, item=item, answers=answers)

    async def _store(
        self,
        conn: aiosqlite.Connection,
        patient: repo.Patient,
        occ: repo.OccRow,
        item: Item,
        value: str,
    ) -> bool:
        """Store one answer (audited). False: it was already the stored value."""
        now = self.rt.now()
        old = await repo.answer_value(conn, occ.id, item.code)
        if old is not None and old == value:
            return False
        await repo.save_answer(conn, occ.id, item.code, value, now)
        await audit.record(
            conn,
            now,
            f"patient:{patient.subject}",
            "answer" if old is None else "answer_changed",
            subject=patient.subject,
            entity=f"{occ.key}/{item.code}",
            old=old,
            new=value,
        )
        return True

    async def _answered(
        self,
        conn: aiosqlite.Connection,
        patient: repo.Patient,
        occ: repo.OccRow,
        outcome: Outcome,
        changed: bool,
    ) -> Outcome:
        """After a stored answer changed: the on_answer duties, then the step's outcome."""
        if changed and self.on_answer:
            answers = await repo.answers(conn, occ.id)
            for hook in self.on_answer:
                await hook(self.rt, conn, patient, occ, answers, outcome)
        return outcome

    # ------------------------------------------------------------------ the steps
    # Each step is one transaction. `respond(conn, outcome)`, if given, runs inside it: the
    # handler queues its reply (the next question, the thank-you, the safety text) in the
    # same commit as the answer, so a crash can lose neither one without the other.

    async def open(
        self, patient: repo.Patient, occ_id: int | None = None, *, respond: Respond | None = None
    ) -> Outcome:
        """/diary or the prompt's Start button: resume where the patient left off."""
        return await self._step(lambda conn: self._open(conn, patient, occ_id), respond)

    async def current(self, patient: repo.Patient) -> Outcome | None:
        """The question `open` would show, read without the write lock, when showing it
        writes nothing (a diary is open and the patient's session on it asks an item);
        otherwise None: call `open`. One query (the web's page after a diary post)."""
        place = await repo.diary_place(self.rt.db.conn, patient.id, self.rt.now())
        if place is None:
            return None
        occ, item_code, returning, answers = place
        if not item_code:
            return None
        item = self.study.item(item_code)
        return Outcome("question", occ, item=item, answers=answers, returning=returning)

    async def answer(
        self,
        patient: repo.Patient,
        occ_id: int,
        item_code: str,
        code: str,
        *,
        respond: Respond | None = None,
    ) -> Outcome:
        """A tapped answer button."""
        return await self._step(
            lambda conn: self._answer(conn, patient, occ_id, item_code, code), respond
        )

    async def toggle(
        self,
        patient: repo.Patient,
        occ_id: int,
        item_code: str,
        code: str,
        *,
        respond: Respond | None = None,
    ) -> Outcome:
        """Multi-select: flip one option and show the updated ticks."""
        return await self._step(
            lambda conn: self._toggle(conn, patient, occ_id, item_code, code), respond
        )

    async def multi_done(
        self, patient: repo.Patient, occ_id: int, item_code: str, *, respond: Respond | None = None
    ) -> Outcome:
        return await self._step(
            lambda conn: self._multi_done(conn, patient, occ_id, item_code), respond
        )

    async def typed(
        self,
        patient: repo.Patient,
        text: str,
        *,
        respond: Respond | None = None,
        expect: tuple[int, str] | None = None,
    ) -> Outcome | None:
        """Typed text while a diary is open. None: no diary question is waiting.

        `expect` (occurrence id, item code): the question the text answers (a web form says
        which one it was); text for any other question is "stale" and changes nothing."""
        if await _session(self.rt.db.conn, patient.id) is None:
            return None  # the common case, answered without taking the write lock
        return await self._step(lambda conn: self._typed(conn, patient, text, expect), respond)

    async def change(
        self, patient: repo.Patient, occ_id: int, item_code: str, *, respond: Respond | None = None
    ) -> Outcome:
        """From the review screen: ask one item again."""
        return await self._step(
            lambda conn: self._change(conn, patient, occ_id, item_code), respond
        )

    async def back(
        self,
        patient: repo.Patient,
        occ_id: int,
        item_code: str | None,
        *,
        respond: Respond | None = None,
    ) -> Outcome:
        """Back to the question before `item_code` (None: from the review, the last one)."""
        return await self._step(lambda conn: self._back(conn, patient, occ_id, item_code), respond)

    async def submit(
        self, patient: repo.Patient, occ_id: int, *, respond: Respond | None = None
    ) -> Outcome:
        return await self._step(lambda conn: self._submit(conn, patient, occ_id), respond)

    async def _step(
        self,
        work: Callable[[aiosqlite.Connection], Awaitable[StepResult]],
        respond: Respond | None,
    ) -> StepResult:
        async with self.rt.db.transaction() as conn:
            outcome = await work(conn)
            if outcome is not None and respond is not None:
                await respond(conn, outcome)
        return outcome

    # ------------------------------------------------------------------ inside the transaction
    async def _open(
        self, conn: aiosqlite.Connection, patient: repo.Patient, occ_id: int | None = None
    ) -> Outcome:
        """/diary or the prompt's Start button: resume where the patient left off."""
        if occ_id is not None:
            occ, refusal = await self._guard(conn, patient, occ_id)
            if refusal:
                return refusal
        else:
            occ = await repo.open_occurrence(conn, patient.id, self.rt.now())
            if occ is None:
                return await self._not_open(conn, patient)
        assert occ is not None
        session = await _session(conn, patient.id)
        if session and session.occurrence_id == occ.id and session.item:
            answers = await repo.answers(conn, occ.id)
            item = self.study.item(session.item)
            return Outcome("question", occ, item=item, answers=answers, returning=session.returning)
        return await self._advance(conn, patient, occ)

    async def _answer(
        self,
        conn: aiosqlite.Connection,
        patient: repo.Patient,
        occ_id: int,
        item_code: str,
        code: str,
    ) -> Outcome:
        """A tapped answer button."""
        asked = await self._asked(conn, patient, occ_id, item_code, multi=False)
        if isinstance(asked, Outcome):
            return asked
        occ, item, _ = asked
        try:
            value = q.accept_button(item, code)
        except q.InputError as exc:
            return Outcome("invalid", occ, item=item, error=exc.code)
        changed = await self._store(conn, patient, occ, item, value)
        return await self._answered(
            conn, patient, occ, await self._advance(conn, patient, occ), changed
        )

    async def _toggle(
        self,
        conn: aiosqlite.Connection,
        patient: repo.Patient,
        occ_id: int,
        item_code: str,
        code: str,
    ) -> Outcome:
        """Multi-select: flip one option and show the updated ticks."""
        asked = await self._asked(conn, patient, occ_id, item_code, multi=True)
        if isinstance(asked, Outcome):
            return asked
        occ, item, session = asked
        answers = await repo.answers(conn, occ.id)
        try:
            value = q.toggle(item, answers.get(item.code), code)
        except q.InputError as exc:
            return Outcome("invalid", occ, item=item, error=exc.code)
        if value:
            changed = await self._store(conn, patient, occ, item, value)
        else:
            changed = True
            await repo.delete_answer(conn, occ.id, item.code)
            await audit.record(
                conn,
                self.rt.now(),
                f"patient:{patient.subject}",
                "answer_cleared",
                subject=patient.subject,
                entity=f"{occ.key}/{item.code}",
                old=answers.get(item.code),
            )
        answers = await repo.answers(conn, occ.id)
        outcome = Outcome("updated", occ, item=item, answers=answers, returning=session.returning)
        return await self._answered(conn, patient, occ, outcome, changed)

    async def _multi_done(
        self, conn: aiosqlite.Connection, patient: repo.Patient, occ_id: int, item_code: str
    ) -> Outcome:
        asked = await self._asked(conn, patient, occ_id, item_code, multi=None)
        if isinstance(asked, Outcome):
            return asked
        occ, item, _ = asked
        answers = await repo.answers(conn, occ.id)
        if not answers.get(item_code):
            return Outcome("invalid", occ, item=item, answers=answers, error="choose_one")
        return await self._advance(conn, patient, occ)

    async def _typed(
        self,
        conn: aiosqlite.Connection,
        patient: repo.Patient,
        text: str,
        expect: tuple[int, str] | None = None,
    ) -> Outcome | None:
        """Typed text while a diary is open. None: no diary question is waiting."""
        session = await _session(conn, patient.id)
        if session is None:
            return None
        if expect is not None and (session.occurrence_id, session.item) != expect:
            occ, refusal = await self._guard(conn, patient, expect[0])
            return refusal or Outcome("stale", occ)
        occ, refusal = await self._guard(conn, patient, session.occurrence_id)
        if refusal:
            await repo.clear_diary_session(conn, patient.id)
            return refusal
        assert occ is not None
        if session.item is None:
            answers = await repo.answers(conn, occ.id)
            return Outcome(
                "invalid",
                occ,
                answers=q.clean(self.study, occ.study_day, answers),
                error="use_buttons_review",
            )
        item = self.study.item(session.item)
        answers = await repo.answers(conn, occ.id)
        try:
            value = q.parse_typed(item, text, self.study.max_free_text)
        except q.InputError as exc:
            return Outcome(
                "invalid",
                occ,
                item=item,
                answers=answers,
                error=exc.code,
                returning=session.returning,
            )
        changed = await self._store(conn, patient, occ, item, value)
        return await self._answered(
            conn, patient, occ, await self._advance(conn, patient, occ), changed
        )

    async def _change(
        self, conn: aiosqlite.Connection, patient: repo.Patient, occ_id: int, item_code: str
    ) -> Outcome:
        """From the review screen: ask one item again."""
        occ, refusal = await self._guard(conn, patient, occ_id)
        if refusal:
            return refusal
        assert occ is not None
        session = await _session(conn, patient.id)
        if session is None or session.occurrence_id != occ.id or session.item is not None:
            return Outcome("stale", occ)
        answers = await repo.answers(conn, occ.id)
        try:
            item = self.study.item(item_code)
        except KeyError:
            return Outcome("stale", occ)
        if item.code not in q.clean(self.study, occ.study_day, answers):
            return Outcome("stale", occ)
        await _set_session(conn, patient.id, occ.id, item.code, True, self.rt.now())
        return Outcome("question", occ, item=item, answers=answers, returning=True)

    async def _back(
        self,
        conn: aiosqlite.Connection,
        patient: repo.Patient,
        occ_id: int,
        item_code: str | None,
    ) -> Outcome:
        occ, refusal = await self._guard(conn, patient, occ_id)
        if refusal:
            return refusal
        assert occ is not None
        session = await _session(conn, patient.id)
        if session is None or session.occurrence_id != occ.id or session.item != item_code:
            return Outcome("stale", occ)
        answers = await repo.answers(conn, occ.id)
        codes = [it.code for it in q.applicable_items(self.study, occ.study_day, answers)]
        before = codes[: codes.index(item_code)] if item_code in codes else codes
        answered = [c for c in before if c in answers]
        if not answered:
            return Outcome("stale", occ)
        item = self.study.item(answered[-1])
        await _set_session(conn, patient.id, occ.id, item.code, True, self.rt.now())
        return Outcome("question", occ, item=item, answers=answers, returning=True)

    async def _submit(
        self, conn: aiosqlite.Connection, patient: repo.Patient, occ_id: int
    ) -> Outcome:
        occ, refusal = await self._guard(conn, patient, occ_id)
        if refusal:
            return refusal
        assert occ is not None
        session = await _session(conn, patient.id)
        answers = await repo.answers(conn, occ.id)
        if (
            session is None
            or session.occurrence_id != occ.id
            or session.item is not None
            or not q.is_complete(self.study, occ.study_day, answers)
        ):
            return Outcome("stale", occ)
        now = self.rt.now()
        kept, _dropped = await drop_no_longer_applying(
            conn, self.study, occ, answers, now, actor=f"patient:{patient.subject}",
            subject=patient.subject,
        )  # fmt: skip
        await repo.mark_submitted(conn, occ.id, now)
        await repo.clear_diary_session(conn, patient.id)
        await audit.record(
            conn,
            now,
            f"patient:{patient.subject}",
            "diary_submitted",
            subject=patient.subject,
            entity=occ.key,
            old=occ.status,
            new=kept,
        )
        outcome = Outcome(
            "submitted",
            occ,
            answers=kept,
            next_occ=await repo.next_opening(conn, patient.id, now),
        )
        for hook in self.on_submit:
            await hook(self.rt, conn, patient, occ, kept, outcome)
        return outcome


async def drop_no_longer_applying(
    conn: aiosqlite.Connection,
    study: Study,
    occ: repo.OccRow,
    answers: dict[str, str],
    now: datetime,
    *,
    actor: str,
    subject: str,
    reason: str = "no longer applies",
) -> tuple[dict[str, str], dict[str, str]]:
    """Delete the stored answers whose question no longer applies (`q.no_longer_applying`),
    each with an `answer_dropped` audit entry, inside the caller's transaction. Returns (the
    answers kept, in questionnaire order; the answers dropped). Submit, closing unsubmitted and
    a site correction all drop them the same way."""
    dropped = q.no_longer_applying(study, occ.study_day, answers)
    for code, value in dropped.items():
        await repo.delete_answer(conn, occ.id, code)
        await audit.record(
            conn,
            now,
            actor,
            "answer_dropped",
            subject=subject,
            entity=f"{occ.key}/{code}",
            old=value,
            reason=reason,
        )
    return q.clean(study, occ.study_day, answers), dropped


async def close_unsubmitted(
    conn: aiosqlite.Connection,
    study: Study,
    occ_id: int,
    subject: str,
    now: datetime,
    *,
    actor: str = "system",
    why: str = "window closed",
) -> bool:
    """A diary closes without Submit (its window ended, the patient was paused or withdrawn):
    the answers given so far stay as data, status "incomplete" (`incomplete_at`), follow-ups
    that no longer apply dropped as at Submit. The escalation rules then run on it at the next
    tick (`rules_run_at`). False: nothing was answered, nothing to keep."""
    occ = await repo.occurrence(conn, occ_id)
    if occ is None or occ.status == "completed":
        return False
    answers = await repo.answers(conn, occ.id)
    if not answers:
        return False
    kept, _dropped = await drop_no_longer_applying(
        conn, study, occ, answers, now, actor=actor, subject=subject
    )
    await repo.mark_incomplete(conn, occ.id, now)
    await audit.record(
        conn,
        now,
        actor,
        "diary_incomplete",
        subject=subject,
        entity=occ.key,
        old=occ.status,
        new=kept,
        reason=why,
    )
    return True
