"""A multi-patient diary history for the data-out tests, made by the real services.

Patients are enrolled, linked to (fake) Telegram chats and fill in their diaries through
`DiaryService`, while `DiaryScheduler.tick` (driven by the fake clock) prompts, reminds and marks
missed diaries — the same code paths as in production, without Telegram in between, so a whole
history takes a fraction of a second. Paused diaries and alerts are written directly, as the
follow-up and escalation features would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import FakeClock, iso
from bot.domain.study import Study
from bot.escalation.corrections import correct_entry
from bot.scheduler import DiaryScheduler
from bot.services.diary import DiaryService, Outcome
from bot.services.enrolment import enroll, link_chat
from bot.services.runtime import Runtime
from storage import audit, repo
from storage.db import Database

START = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
STAFF = ((70001, "coordinator", "Li Wei", "zh_Hans"), (70002, "investigator", "Dr Zhang", "en"))


@dataclass
class PatientPlan:
    subject: str
    user_id: int
    lang: str
    injection: date
    skip: set[int] = field(default_factory=set)  # study days left unanswered (→ missed)
    pause: set[int] = field(default_factory=set)  # study days marked paused


PLANS = (
    PatientPlan("RP-001", 900001, "zh_Hans", date(2026, 12, 1), skip={2, 3}, pause={5}),
    PatientPlan("RP-002", 900002, "en", date(2026, 11, 30), skip={1}),
    PatientPlan("RP-003", 900003, "zh_Hans", date(2026, 12, 3)),
)
LAST_DAY = date(2026, 12, 8)  # local date of the last diary filled in
# RP-003 answered PAIN 4 on Day 2; the site corrects it to 2 afterwards.
CORRECTION = ("RP-003", 2, "PAIN", "2", "Patient phoned: meant 2, not 4")


@dataclass
class Seed:
    rt: Runtime
    db_path: Path
    clock: FakeClock
    codes: list[str]
    user_ids: list[int]
    staff_names: list[str]
    staff_ids: list[int]


def answer_for(code: str, day: int, subject: str) -> str:
    """A deterministic, varied answer per item, day and patient."""
    n = day + int(subject[-1])
    return {
        "BLEED": str(n % 4),
        "BLEED_FAINT": "N",
        "URGENCY": str(n % 5),
        "LEAK": "0",
        "PAIN": str((n * 3) % 11),
        "BM": str(2 + n % 6),
        "TENESMUS": str(n % 3),
        "FEVER": "Y" if day == 1 else "N",
        "TEMP": "38,4",
        "MUCUS": str(n % 3),
        "BM_USUAL": str(1 + n % 4),
        "BLEED_DAYS": str(1 + n % 7),
        "COMPL": "NONE",
        "EVENTS": "NONE" if n % 3 else "ER,MED",
        "OTHER": "Y" if day == 4 else "N",
        "OTHER_TEXT": "头晕 and a rash 皮疹",
    }[code]


async def fill(diary: DiaryService, patient: repo.Patient, *, change: bool = False) -> None:
    """Answer every question of the open diary, then submit.

    With `change`, answers are changed on the review screen first: PAIN to 1, and a BLEED of 3
    to 0, so that its follow-up question is dropped at submission (both audited).
    """
    outcome = await diary.open(patient)
    assert outcome.status == "question", outcome.status
    occ = outcome.occ
    assert occ is not None
    while outcome.status == "question":
        item = outcome.item
        assert item is not None
        value = answer_for(item.code, occ.study_day, patient.subject)
        if item.kind == "multi":
            for code in value.split(","):
                await diary.toggle(patient, occ.id, item.code, code)
            outcome = await diary.multi_done(patient, occ.id, item.code)
        elif item.kind in ("number", "text"):
            result = await diary.typed(patient, value)
            assert result is not None
            outcome = result
        else:
            outcome = await diary.answer(patient, occ.id, item.code, value)
    assert outcome.status == "review", outcome.status
    if change:
        for code, new in (("PAIN", "1"), ("BLEED", "0")):
            if code == "BLEED" and outcome.answers.get("BLEED") != "3":
                continue
            outcome = await diary.change(patient, occ.id, code)
            assert outcome.status == "question"
            outcome = await diary.answer(patient, occ.id, code, new)
            assert outcome.status == "review", outcome.status
    submitted: Outcome = await diary.submit(patient, occ.id)
    assert submitted.status == "submitted", submitted.status


async def seed(tmp_path: Path, study: Study) -> Seed:
    clock = FakeClock(START)
    db_path = tmp_path / "seed.sqlite3"
    db = await Database.open(db_path)
    rt = Runtime(db=db, study=study, clock=clock)
    scheduler = DiaryScheduler(rt)
    clock.on_change(scheduler.tick)
    diary = DiaryService(rt)
    async with db.transaction() as conn:
        for tid, role, name, lang in STAFF:
            await conn.execute(
                "INSERT INTO staff (telegram_id, role, name, lang, active, created_at)"
                " VALUES (?,?,?,?,1,?)",
                (tid, role, name, lang, iso(clock.now())),
            )
            await audit.record(conn, clock.now(), "cli", "staff_add", entity=f"staff:{tid}")
    codes = []
    for plan in PLANS:
        result = await enroll(
            rt, plan.subject, plan.injection, plan.lang, "Asia/Shanghai", time(20, 0)
        )
        codes.append(result.code)
        linked = await link_chat(rt, plan.user_id, plan.user_id, result.code)
        assert linked.status == "ok", linked.status
    day = START.astimezone(SHANGHAI).date()
    while day <= LAST_DAY:
        await clock.set(datetime.combine(day, time(20, 30), SHANGHAI).astimezone(UTC))
        for plan in PLANS:
            patient = await repo.patient_by_subject(db.conn, plan.subject)
            assert patient is not None
            study_day = (day - plan.injection).days
            occ = await repo.open_occurrence(db.conn, patient.id, clock.now())
            if occ is None:
                continue
            if study_day in plan.pause:
                await db.execute("UPDATE occurrences SET status = 'paused' WHERE id = ?", (occ.id,))
            elif study_day not in plan.skip:
                await fill(diary, patient, change=study_day == 0)
        day += timedelta(days=1)
    # The last diaries close the next day at noon: afterwards the skipped ones are missed.
    await clock.set(datetime.combine(LAST_DAY + timedelta(days=1), time(13, 0), SHANGHAI))
    # A site correction after submission (CORRECTION), with its reason.
    await correct_entry(rt, *CORRECTION, actor="cli")
    p1 = await repo.patient_by_subject(db.conn, "RP-001")
    assert p1 is not None
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO alerts (patient_id, rule, level, reason, details, study_day, raised_at,"
            " updated_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                p1.id,
                "PAIN_SEVERE",
                "urgent",
                "Pain 8 or more",
                "{}",
                4,
                iso(clock.now()),
                iso(clock.now()),
            ),
        )
    return Seed(
        rt=rt,
        db_path=db_path,
        clock=clock,
        codes=codes,
        user_ids=[p.user_id for p in PLANS],
        staff_names=[s[2] for s in STAFF],
        staff_ids=[s[0] for s in STAFF],
    )


@dataclass(frozen=True)
class SeedFile:
    """A seeded database on disk (closed), and what must never appear in an export."""

    path: Path
    now: datetime
    codes: list[str]
    user_ids: list[int]
    staff_names: list[str]
    staff_ids: list[int]


def seed_file(folder: Path, study: Study) -> SeedFile:
    """Seed in a private event loop and close the database (no -wal left beside it)."""

    async def run() -> SeedFile:
        s = await seed(folder, study)
        await s.rt.db.close()
        return SeedFile(s.db_path, s.clock.now(), s.codes, s.user_ids, s.staff_names, s.staff_ids)

    return asyncio.run(run())
