"""Read-only questions the sandbox page asks the database: who is here, what is due next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.clock import from_iso, iso
from bot.domain.schedule import study_day
from storage.db import Database
from storage.repo import Patient

# The same conditions the scheduler uses to decide that a prompt or reminder goes out.
_REACHABLE = (
    "p.status = 'active' AND ((p.chat_id IS NOT NULL AND p.unreachable = 0)"
    " OR (p.channel = 'web' AND p.phone IS NOT NULL))"
)


@dataclass(frozen=True)
class Due:
    """The next prompt or reminder the bot will send to anyone."""

    at: datetime
    kind: str  # "prompt" | "reminder"
    subject: str


async def next_prompt(db: Database, now: datetime) -> Due | None:
    """The earliest future diary prompt or reminder, from the occurrences table."""
    n = iso(now)
    row = await db.fetchone(
        "SELECT t, kind, subject FROM ("
        " SELECT o.opens_at AS t, 'prompt' AS kind, p.subject FROM occurrences o"
        f"  JOIN patients p ON p.id = o.patient_id WHERE {_REACHABLE}"
        "  AND o.status = 'scheduled' AND o.opens_at > ?"
        " UNION ALL SELECT o.remind_at, 'reminder', p.subject FROM occurrences o"
        f"  JOIN patients p ON p.id = o.patient_id WHERE {_REACHABLE}"
        "  AND o.status = 'prompted' AND o.remind_at > ? AND o.closes_at > o.remind_at)"
        " ORDER BY t, subject LIMIT 1",
        (n, n),
    )
    if row is None:
        return None
    return Due(at=from_iso(row["t"]), kind=row["kind"], subject=row["subject"])


@dataclass(frozen=True)
class PatientRow:
    subject: str
    status: str
    lang: str | None
    timezone: str
    prompt_time: str
    user_id: int | None
    study_day: int
    channel: str = "telegram"  # or "web": the web diary, reached by SMS
    phone: str | None = None
    birth_year: int | None = None


async def patients(db: Database, now: datetime) -> list[PatientRow]:
    rows = await db.fetchall("SELECT * FROM patients ORDER BY subject")
    out = []
    for r in rows:
        p = Patient.from_row(r)
        local = now.astimezone(ZoneInfo(p.timezone)).date()
        out.append(
            PatientRow(
                subject=p.subject,
                status=p.status,
                lang=p.lang,
                timezone=p.timezone,
                prompt_time=p.prompt_time.strftime("%H:%M"),
                user_id=p.user_id,
                study_day=study_day(p.injection_date, local),
                channel=r["channel"],
                phone=r["phone"],
                birth_year=r["birth_year"],
            )
        )
    return out


@dataclass(frozen=True)
class StaffRow:
    telegram_id: int
    role: str
    name: str
    lang: str


async def staff(db: Database) -> list[StaffRow]:
    rows = await db.fetchall(
        "SELECT telegram_id, role, name, lang FROM staff WHERE active = 1"
        " ORDER BY CASE role WHEN 'coordinator' THEN 0 WHEN 'investigator' THEN 1 ELSE 2 END,"
        " telegram_id"
    )
    return [StaffRow(r["telegram_id"], r["role"], r["name"], r["lang"]) for r in rows]


async def staff_group(db: Database) -> int | None:
    value = await db.scalar("SELECT value FROM meta WHERE key = 'staff_group'")
    return int(value) if value else None
