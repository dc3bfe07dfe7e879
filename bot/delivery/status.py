"""What an operator looks at first: the outbox, unreachable patients, open alerts.

One read-only snapshot (`snapshot`) feeds both `diarybot status` and the periodic health line
in the log, so the two never disagree. Subject IDs only, never message texts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.clock import from_iso, iso
from bot.messenger import Priority
from storage import delivery as store
from storage.db import Database

PRIORITY_NAMES = {int(p): p.name.lower() for p in Priority}


@dataclass(frozen=True)
class Unreachable:
    subject: str
    since: str | None  # UTC ISO of the audit entry that marked it, if any


@dataclass(frozen=True)
class Snapshot:
    at: str
    queued: dict[str, int]  # by priority name, due now
    parked: int  # queued, waiting for a later retry after repeated failures
    oldest_queued_seconds: float | None
    oldest_queued_priority: str | None
    failed_24h: int
    sent_last_hour: int
    unreachable: list[Unreachable] = field(default_factory=list)
    open_alerts: dict[str, int] | None = None  # by level; None: no alerts table
    last_update_id: int | None = None
    # the parked ones by priority (non-zero only): an urgent alert waiting to retry stands out
    parked_by: dict[str, int] = field(default_factory=dict)

    @property
    def queued_total(self) -> int:
        return sum(self.queued.values()) + self.parked

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def snapshot(db: Database, now: datetime, *, since: bool = True) -> Snapshot:
    """`since`: look up when each unreachable patient was marked (an audit scan; CLI only)."""
    n = iso(now)
    conn = db.conn
    queued = dict.fromkeys(PRIORITY_NAMES.values(), 0)
    for priority, count in await store.queued_due_by_priority(conn, now):
        queued[PRIORITY_NAMES.get(priority, str(priority))] = count
    parked_by = {
        PRIORITY_NAMES.get(priority, str(priority)): int(count)
        for priority, count in await store.parked_by_priority(conn, now)
    }
    oldest = await store.oldest_queued(conn)
    failed = await store.failed_since(conn, now - timedelta(hours=24))
    sent = await store.sent_since(conn, now - timedelta(hours=1))
    unreachable = [
        Unreachable(subject, marked)
        for subject, marked in await store.unreachable_patients(conn, since=since)
    ]
    last_update = await store.last_update_id(conn)
    return Snapshot(
        at=n,
        queued=queued,
        parked=sum(parked_by.values()),
        parked_by=parked_by,
        oldest_queued_seconds=(
            max(0.0, (now - from_iso(oldest[0])).total_seconds()) if oldest else None
        ),
        oldest_queued_priority=PRIORITY_NAMES.get(oldest[1]) if oldest else None,
        failed_24h=failed,
        sent_last_hour=sent,
        unreachable=unreachable,
        open_alerts=await store.open_alerts(conn),
        last_update_id=int(last_update) if last_update else None,
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d"


def report(s: Snapshot) -> str:
    """The `diarybot status` text: one topic a line, the worrying numbers first."""
    by_priority = ", ".join(f"{name} {count}" for name, count in s.queued.items())
    parked = ", ".join(f"{name} {count}" for name, count in s.parked_by.items())
    lines = [
        f"outbox: {s.queued_total} queued ({by_priority}; waiting to retry {s.parked}"
        + (f": {parked})" if parked else ")"),
        f"oldest queued: {duration(s.oldest_queued_seconds)}"
        + (f" ({s.oldest_queued_priority})" if s.oldest_queued_priority else ""),
        f"sent in the last hour: {s.sent_last_hour}; failed in the last 24 h: {s.failed_24h}",
    ]
    if s.unreachable:
        names = ", ".join(
            f"{u.subject} (since {u.since[:16].replace('T', ' ')} UTC)" if u.since else u.subject
            for u in s.unreachable
        )
        lines.append(f"unreachable patients: {len(s.unreachable)}: {names}")
    else:
        lines.append("unreachable patients: 0")
    if s.open_alerts is None:
        lines.append("open alerts: - (no alerts table)")
    else:
        total = sum(s.open_alerts.values())
        levels = ", ".join(f"{k} {v}" for k, v in s.open_alerts.items())
        lines.append(f"open alerts: {total}" + (f" ({levels})" if levels else ""))
    lines.append(f"last update processed: {s.last_update_id or '-'}")
    return "\n".join(lines)


def health_line(s: Snapshot, stats: dict[str, int] | None = None) -> str:
    """One log line: enough to see at a glance whether delivery is healthy."""
    q = " ".join(f"{k}={v}" for k, v in s.queued.items())
    alerts = "-" if s.open_alerts is None else str(sum(s.open_alerts.values()))
    line = (
        f"health: queued {q} parked={s.parked} oldest={duration(s.oldest_queued_seconds)}"
        f" sent_1h={s.sent_last_hour} failed_24h={s.failed_24h}"
        f" unreachable={len(s.unreachable)} open_alerts={alerts}"
    )
    if stats:
        line += " | sender " + " ".join(f"{k}={v}" for k, v in stats.items())
    return line
