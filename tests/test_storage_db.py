"""storage.db: transactions stay whole when the task running them is cancelled.

aiosqlite runs a queued statement even after the awaiting task is cancelled (the sender is
cancelled this way at shutdown). A transaction cancelled at any of its awaits must leave the
connection outside any transaction, with all or none of its writes.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from storage.db import Database, UpdateMark, handling_update


async def _write_pair(db: Database, n: int, mark: UpdateMark | None = None) -> None:
    if mark is not None:
        handling_update.set(mark)
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO meta (key, value) VALUES (?, 'a')", (f"a{n}",))
        await conn.execute("INSERT INTO meta (key, value) VALUES (?, 'b')", (f"b{n}",))


async def test_a_transaction_cancelled_at_any_statement_leaves_all_or_nothing(
    tmp_path: Path,
) -> None:
    db = await Database.open(tmp_path / "db.sqlite3")
    loop = asyncio.get_running_loop()
    try:
        outcomes: dict[tuple[bool, int], int] = {}
        # BEGIN, two INSERTs, (the update mark,) COMMIT: cancel while each one is awaited
        for with_mark in (False, True):
            for at in range(1, 6 if with_mark else 5):
                n = len(outcomes)
                task = asyncio.create_task(
                    _write_pair(db, n, UpdateMark(n + 1) if with_mark else None)
                )
                seen = [0]

                def on_statement(
                    _: str, at: int = at, task: asyncio.Task[None] = task, seen: list[int] = seen
                ) -> None:
                    # on aiosqlite's thread, while the statement runs: the task is awaiting it
                    seen[0] += 1
                    if seen[0] == at:
                        loop.call_soon_threadsafe(task.cancel)

                await db.conn.set_trace_callback(on_statement)
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                # aiosqlite annotates the handler as Callable; sqlite3 takes None to remove it
                await db.conn.set_trace_callback(None)  # type: ignore[arg-type]
                assert task.cancelled()
                assert not db.conn.in_transaction
                rows = await db.fetchall(
                    "SELECT key FROM meta WHERE key IN (?, ?)", (f"a{n}", f"b{n}")
                )
                outcomes[(with_mark, at)] = len(rows)
                async with db.transaction() as conn:  # the next transaction starts cleanly
                    await conn.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (f"x{n}",))
        # all or nothing: cancelled while COMMIT ran, the pair is stored; before, nothing is
        assert outcomes == {
            (False, 1): 0, (False, 2): 0, (False, 3): 0, (False, 4): 2,
            (True, 1): 0, (True, 2): 0, (True, 3): 0, (True, 4): 0, (True, 5): 2,
        }  # fmt: skip
        assert await db.scalar("SELECT COUNT(*) FROM meta WHERE key LIKE 'x%'") == len(outcomes)
    finally:
        await db.close()
