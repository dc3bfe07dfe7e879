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
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import aiosqlite

from bot import messenger
from bot.domain.schedule import local_to_utc, visit_schedule
from bot.followup.digest_data import DigestData, VisitSoon
from bot.i18n import t
from bot.messenger import Priority
from bot.services.runtime import Runtime
from conversations import digest_view  # the staff-side text
from storage import audit, repo
from storage import digest as digest_store

VISIT_HORIZON_DAYS = 7

# Optional source of open review alerts (escalation): returns how many, or None if unknown.
# (subject, reason msgid) of the unacknowledged review alerts; None: no escalation feature.
AlertCounter = Callable[[aiosqlite.Connection, datetime], Awaitable[list[tuple[str, str]] | None]]


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
    return await digest_store.sent(conn, day)


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
    rows = await digest_store.diaries_opened(conn, now - timedelta(days=3), now)
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
    runs = await digest_store.missed_runs(conn, threshold)

    visits: list[VisitSoon] = []
    for p in await digest_store.followed_patients(conn):
        today = now.astimezone(ZoneInfo(p["timezone"])).date()
        for v in visit_schedule(study, date.fromisoformat(p["injection_date"])):
            if today <= v.target_date <= today + timedelta(days=VISIT_HORIZON_DAYS):
                visits.append(
                    VisitSoon(p["subject"], v.name, v.target_date, v.window_start, v.window_end)
                )
    visits.sort(key=lambda v: (v.target, v.subject))

    new = await digest_store.enrolled_between(conn, since, now)
    return DigestData(
        local_date=study_today(rt, now),
        completed=completed,
        due=due,
        not_completed=not_completed,
        missed_runs=runs,
        visits=visits,
        new_patients=new,
        review_alerts=await alerts(conn, now) if alerts is not None else None,
        missed_threshold=rt.study.missed_in_a_row_alert,
    )


async def maybe_send(rt: Runtime, now: datetime, alerts: AlertCounter | None = None) -> bool:
    """Send today's digest if its time has come and it has not gone out yet."""
    from conversations.dataout_view import audit_head_line

    today = study_today(rt, now)
    if now < digest_at(rt, today) or await _sent(rt.db.conn, today):
        return False
    async with rt.db.transaction() as conn:
        if await _sent(conn, today):
            return False
        since = await digest_store.last_sent_at(conn) or now - timedelta(days=1)
        data = await collect(conn, rt, now, since, alerts)
        staff = await repo.active_staff(conn)
        # The audit trail's head goes out with every study-team copy: a record of it outside
        # the server, for `diarybot audit verify --expect-head` (docs/data.md).
        head = await audit.head(conn)
        for member in staff:
            _ = t(member.lang)
            text = digest_view.digest_text(_, data)
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
        await digest_store.record_run(conn, today, now, len(staff), data.quiet)
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
