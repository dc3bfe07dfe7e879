"""The coordinator digest: once a day at `study.digest_time` (study time zone), to every active
staff member in their own language.

Contents: yesterday's diaries per patient (each patient's own yesterday, in their time zone),
patients with N or more misses in a row, visits due in the next 7 days, new enrolments since the
previous digest, and — when the escalation feature offers them — unacknowledged review alerts.
A quiet day is one reassuring line. The day's row in `digest_runs` is written in the same
transaction as the messages, so a restart never sends a second digest for the same day, and a
bot that was down at 09:00 sends it when it comes back (same day only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import aiosqlite

from bot import messenger
from bot.clock import from_iso, iso
from bot.domain.schedule import local_to_utc, visit_schedule
from bot.i18n import t
from bot.messenger import Priority
from bot.services.runtime import Runtime
from storage import audit, repo

VISIT_HORIZON_DAYS = 7

# Optional source of open review alerts (escalation): returns how many, or None if unknown.
# (subject, reason msgid) of the unacknowledged review alerts; None: no escalation feature.
AlertCounter = Callable[[aiosqlite.Connection, datetime], Awaitable[list[tuple[str, str]] | None]]


@dataclass(frozen=True)
class VisitSoon:
    subject: str
    visit: str  # msgid of the visit name
    target: date
    start: date
    end: date


@dataclass(frozen=True)
class DigestData:
    local_date: date
    completed: int
    due: int
    not_completed: list[tuple[str, str]]  # (subject, missed | open)
    missed_runs: list[tuple[str, int]]
    visits: list[VisitSoon]
    new_patients: list[str]
    # (subject, reason msgid) of the unacknowledged review alerts; None: no escalation feature
    review_alerts: list[tuple[str, str]] | None = None
    extra: dict[str, object] = field(default_factory=dict)
    missed_threshold: int = 3  # the study's `missed_in_a_row_alert`

    @property
    def open_alerts(self) -> int:
        return len(self.review_alerts or [])

    @property
    def quiet(self) -> bool:
        return (
            not self.not_completed
            and not self.missed_runs
            and not self.visits
            and not self.new_patients
            and not self.open_alerts
        )


def study_today(rt: Runtime, now: datetime) -> date:
    return now.astimezone(ZoneInfo(rt.study.timezone)).date()


def digest_at(rt: Runtime, day: date) -> datetime:
    return local_to_utc(day, rt.study.digest_time, rt.study.timezone)


async def next_time(rt: Runtime, now: datetime) -> datetime:
    """When the next digest is due (today's if not sent yet, else tomorrow's)."""
    today = study_today(rt, now)
    if not await _sent(rt.db.conn, today):
        return max(digest_at(rt, today), now)
    return digest_at(rt, today + timedelta(days=1))


async def _sent(conn: aiosqlite.Connection, day: date) -> bool:
    row = await repo._one(
        conn, "SELECT 1 FROM digest_runs WHERE local_date = ?", (day.isoformat(),)
    )
    return row is not None


async def collect(
    conn: aiosqlite.Connection,
    rt: Runtime,
    now: datetime,
    since: datetime,
    alerts: AlertCounter | None = None,
) -> DigestData:
    study = rt.study
    # Yesterday in each patient's own zone: fetch diaries that opened in the last 3 days and keep
    # the ones dated the patient's yesterday.
    rows = await repo._all(
        conn,
        "SELECT p.subject, p.timezone, o.local_date, o.status FROM occurrences o"
        " JOIN patients p ON p.id = o.patient_id"
        " WHERE o.status IN ('completed', 'missed', 'scheduled', 'prompted', 'reminded')"
        " AND o.opens_at > ? AND o.opens_at <= ? ORDER BY p.subject",
        (iso(now - timedelta(days=3)), iso(now)),
    )
    yesterday: dict[str, date] = {}
    completed = due = 0
    not_completed: list[tuple[str, str]] = []
    for r in rows:
        tz = r["timezone"]
        if tz not in yesterday:
            yesterday[tz] = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)
        if r["local_date"] != yesterday[tz].isoformat():
            continue
        due += 1
        if r["status"] == "completed":
            completed += 1
        else:
            not_completed.append((r["subject"], "missed" if r["status"] == "missed" else "open"))

    threshold = study.missed_in_a_row_alert
    runs = await repo._all(
        conn,
        "SELECT p.subject, COUNT(*) FROM occurrences o JOIN patients p ON p.id = o.patient_id"
        " WHERE p.status = 'active' AND o.status = 'missed' AND o.opens_at > COALESCE("
        " (SELECT MAX(c.opens_at) FROM occurrences c WHERE c.patient_id = o.patient_id"
        " AND c.status = 'completed'), '') GROUP BY p.id HAVING COUNT(*) >= ? ORDER BY p.subject",
        (threshold,),
    )

    visits: list[VisitSoon] = []
    for p in await repo._all(
        conn,
        "SELECT subject, injection_date, timezone FROM patients"
        " WHERE status IN ('active', 'paused') ORDER BY subject",
    ):
        today = now.astimezone(ZoneInfo(p["timezone"])).date()
        for v in visit_schedule(study, date.fromisoformat(p["injection_date"])):
            if today <= v.target_date <= today + timedelta(days=VISIT_HORIZON_DAYS):
                visits.append(
                    VisitSoon(p["subject"], v.name, v.target_date, v.window_start, v.window_end)
                )
    visits.sort(key=lambda v: (v.target, v.subject))

    new = await repo._all(
        conn,
        "SELECT subject FROM patients WHERE created_at > ? AND created_at <= ? ORDER BY subject",
        (iso(since), iso(now)),
    )
    return DigestData(
        local_date=study_today(rt, now),
        completed=completed,
        due=due,
        not_completed=not_completed,
        missed_runs=[(r[0], r[1]) for r in runs],
        visits=visits,
        new_patients=[r[0] for r in new],
        review_alerts=await alerts(conn, now) if alerts is not None else None,
        missed_threshold=rt.study.missed_in_a_row_alert,
    )


async def maybe_send(rt: Runtime, now: datetime, alerts: AlertCounter | None = None) -> bool:
    """Send today's digest if its time has come and it has not gone out yet."""
    from conversations import staff_schedule  # the staff-side view
    from conversations.dataout_view import audit_head_line

    today = study_today(rt, now)
    if now < digest_at(rt, today) or await _sent(rt.db.conn, today):
        return False
    async with rt.db.transaction() as conn:
        if await _sent(conn, today):
            return False
        last = await repo._one(conn, "SELECT MAX(sent_at) FROM digest_runs", ())
        since = from_iso(last[0]) if last and last[0] else now - timedelta(days=1)
        data = await collect(conn, rt, now, since, alerts)
        staff = await repo.active_staff(conn)
        # The audit trail's head goes out with every study-team copy: a record of it outside
        # the server, for `diarybot audit verify --expect-head` (docs/data.md).
        head = await audit.head(conn)
        for member in staff:
            _ = t(member.lang)
            text = staff_schedule.digest_text(_, data)
            if head:
                text += "\n\n" + audit_head_line(_, head)
            await messenger.enqueue(
                conn,
                now,
                member.telegram_id,
                text,
                priority=Priority.DIGEST,
                ref=f"digest:{today.isoformat()}:{member.telegram_id}",
            )
        await conn.execute(
            "INSERT INTO digest_runs (local_date, sent_at, recipients, quiet) VALUES (?,?,?,?)",
            (today.isoformat(), iso(now), len(staff), int(data.quiet)),
        )
        await audit.record(
            conn,
            now,
            "system",
            "digest_sent",
            entity=f"digest:{today.isoformat()}",
            new={
                "recipients": len(staff),
                "diaries_due": data.due,
                "completed": data.completed,
                "audit_head": head,
            },
        )
    rt.wake_sender()
    return True
