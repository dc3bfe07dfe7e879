"""Staff commands that cannot be undone (withdraw, re-anchor) wait for a Confirm button.

The pending command is a row; the button carries only its id, and a tap is honoured only for
the staff member who issued the command, once, within `VALID_FOR`. A second tap, another
person's tap or a stale button changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import aiosqlite

from bot.clock import from_iso
from bot.services.runtime import Runtime
from storage import followup as store
from storage import repo

VALID_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class Pending:
    id: int
    staff_id: int
    action: str
    subject: str
    argument: str | None
    reason: str | None


async def create(
    rt: Runtime,
    staff_id: int,
    action: str,
    subject: str,
    argument: str | None,
    reason: str | None,
) -> int:
    async with rt.db.transaction() as conn:
        return await store.insert_confirmation(
            conn, staff_id, action, subject, argument, reason, rt.now()
        )


async def claim(rt: Runtime, confirmation_id: int, staff_id: int) -> Pending | None:
    """Take the pending command for execution, or None (not theirs, used, expired, unknown)."""
    now = rt.now()
    async with rt.db.transaction() as conn:
        row = await repo.unused_confirmation(conn, confirmation_id, staff_id)
        if row is None or from_iso(row["created_at"]) + VALID_FOR <= now:
            return None
        await repo.use_confirmation(conn, row["id"], now)
        return _pending(row)


def _pending(r: aiosqlite.Row) -> Pending:
    return Pending(
        id=r["id"],
        staff_id=r["staff_id"],
        action=r["action"],
        subject=r["subject"],
        argument=r["argument"],
        reason=r["reason"],
    )
