"""The SQLite database: one aiosqlite connection, numbered migrations, serialized writes.

Why one connection and a lock: aiosqlite runs every statement on one thread per connection, and
SQLite allows one writer. Several asyncio tasks share the connection, so a transaction must not
interleave with another task's statements; `transaction()` holds an asyncio lock for its span.
WAL with synchronous=FULL: an answer acknowledged to a patient survives a crash or power cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from storage import audit, keys

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


# The Telegram update being handled in this task, if any. Every transaction committed while
# handling it also records it as processed, atomically with the handler's own writes: after a
# crash an update is either fully re-handled (nothing of it was committed) or skipped (its
# effects are on disk) — never applied twice (a re-applied multi-select tap would undo itself).
handling_update: ContextVar[UpdateMark | None] = ContextVar("handling_update", default=None)


class UpdateMark:
    """The update being handled, and whether a commit has recorded it yet.

    `failed`: a write of its handler failed (disk full, database locked, read-only): if nothing
    of it was committed it is handled again later.
    """

    __slots__ = ("failed", "recorded", "update_id")

    def __init__(self, update_id: int) -> None:
        self.update_id = update_id
        self.recorded = False
        self.failed: BaseException | None = None


class IntegrityError(RuntimeError):
    """PRAGMA quick_check found a damaged database."""


class MigrationNeeded(RuntimeError):
    """The database is older than this diarybot: only `diarybot migrate` or `run` upgrade it."""

    def __init__(self, path: str, version: int, latest: int) -> None:
        super().__init__(
            f"the database {path} is at schema version {version}, this diarybot needs"
            f" {latest}: run `diarybot migrate`"
        )
        self.version = version
        self.latest = latest


class DatabaseTooNew(RuntimeError):
    """The database was written by a newer diarybot: this one must not touch it."""


# Called with the open database, its version and the version it is about to be migrated to,
# before any migration runs (a verified backup, bot.ops.upgrade).
BeforeMigrate = Callable[["Database", int, int], Awaitable[None]]


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) of every packaged migration, in order."""
    folder = resources.files("storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        m = MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number: {numbers}")
    return found


def latest_version() -> int:
    """The schema version this code expects: the highest packaged migration."""
    found = migrations()
    return found[-1][0] if found else 0


class Database:
    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self._lock = _Lock()
        self._identity = _identity(path)

    def missing(self) -> str | None:
        """Why the file at `path` is no longer the database we opened (deleted or replaced).

        SQLite keeps writing to a deleted file it has open, so without this check the bot
        would go on storing answers into a file nobody can ever read again.
        """
        if self._identity is None:
            return None
        now = _identity(self.path)
        if now is None:
            return f"the database file {self.path} has disappeared"
        if now != self._identity:
            return f"the database file {self.path} was replaced by another file"
        return None

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        check: bool = True,
        migrate: bool = False,
        before_migrate: BeforeMigrate | None = None,
    ) -> Database:
        """Open (and check) a database; a new, empty file gets the whole schema.

        An existing database at an older schema version is migrated only with `migrate=True`
        (`diarybot run`, `diarybot migrate`), after `before_migrate` (a verified backup);
        otherwise `MigrationNeeded` is raised before anything is written.
        """
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        conn.row_factory = aiosqlite.Row
        db = cls(conn, str(path))
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            if check:
                await db.quick_check()
            _private(path)
            # The audit key first: a backup taken before a migration verifies the chain.
            keys.register(conn, await asyncio.to_thread(keys.load, path))
            await db._upgrade(migrate, before_migrate)
            await audit.seal_legacy(conn)
        except BaseException as exc:
            # Close the connection's thread, or the process cannot exit after the error.
            await conn.close()
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
                exc, sqlite3.OperationalError
            ):
                # A damaged file can fail before quick_check runs ("file is not a database",
                # "database disk image is malformed"): the same clear error.
                raise IntegrityError(
                    f"{path}: damaged database: {exc}\nStop the bot and restore the latest"
                    " backup (docs/data.md)."
                ) from exc
            raise
        db._identity = _identity(str(path))  # the file exists now
        return db

    async def close(self) -> None:
        await self.conn.close()

    async def quick_check(self) -> None:
        async with self.conn.execute("PRAGMA quick_check") as cur:
            rows = [r[0] for r in await cur.fetchall()]
        if rows != ["ok"]:
            problems = "\n".join(rows).splitlines()  # one row can hold many lines
            raise IntegrityError(
                f"{self.path}: PRAGMA quick_check failed: {'; '.join(problems[:5])}"
                f"{' …' if len(problems) > 5 else ''}\nStop the bot and restore the latest"
                " backup (docs/data.md)."
            )

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def _upgrade(self, migrate: bool, before_migrate: BeforeMigrate | None) -> None:
        version = await self.schema_version()
        latest = latest_version()
        if version > latest:
            raise DatabaseTooNew(
                f"the database {self.path} is at schema version {version}, newer than this"
                f" diarybot ({latest}): install the newer diarybot (or restore a backup)"
            )
        if version == latest:
            return
        fresh = version == 0 and not await self.scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
        )
        if not fresh:
            if not migrate:
                raise MigrationNeeded(self.path, version, latest)
            if before_migrate is not None:
                await before_migrate(self, version, latest)
        await self.migrate()

    async def migrate(self, upto: int | None = None) -> list[str]:
        """Apply every migration newer than PRAGMA user_version (up to `upto`), each in its own
        transaction. Call through `open(migrate=True)`, which takes the backup first."""
        applied = []
        version = await self.schema_version()
        for number, name, sql in migrations():
            if number <= version or (upto is not None and number > upto):
                continue
            async with self.transaction():
                for statement in _statements(sql):
                    await self.conn.execute(statement)
                await self.conn.execute(f"PRAGMA user_version={number}")
            applied.append(name)
        return applied

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT, exclusive among this process's tasks.

        Cancellation-safe: aiosqlite runs a queued statement even when the task awaiting it is
        cancelled, so a task cancelled while its BEGIN (or a statement, or the update mark) was
        queued must still queue a ROLLBACK before it gives up the lock. Otherwise the
        connection stays inside a transaction nobody owns and the next BEGIN fails.
        """
        async with self._lock:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                await self._rollback()
                raise
            try:
                yield self.conn
                mark = handling_update.get()
                if mark is not None and not mark.recorded:
                    await self.conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('last_update_id', ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                        " WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                        (str(mark.update_id),),
                    )
            except BaseException:
                await self._rollback()
                raise
            try:
                # Shielded: once queued, COMMIT happens even if this task is cancelled.
                await asyncio.shield(self.conn.execute("COMMIT"))
            except BaseException:
                await self._rollback()  # a failed COMMIT can leave the transaction open
                raise
            if mark is not None:
                mark.recorded = True

    async def _rollback(self) -> None:
        """ROLLBACK if a transaction is open (BEGIN may itself have failed: database locked)."""
        with contextlib.suppress(sqlite3.OperationalError):
            await asyncio.shield(self.conn.execute("ROLLBACK"))

    # Reads use execute_fetchall: one hop to aiosqlite's thread instead of three (execute,
    # fetch, close), which is most of what a read costs on a busy event loop.

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        rows = list(await self.conn.execute_fetchall(sql, params))
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self.conn.execute_fetchall(sql, params))

    async def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write in its own transaction; returns lastrowid."""
        async with self.transaction() as c:
            cur = await c.execute(sql, params)
            return cur.lastrowid or 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as c:
            await c.executemany(sql, rows)


def _identity(path: str) -> tuple[int, int] | None:
    if path == ":memory:" or path.startswith("file:"):
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def _private(path: str | Path) -> None:
    """The database and its WAL/SHM are readable by this user only (whatever the umask was)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


class _Lock:
    """An asyncio.Lock created lazily so a Database can be opened in one loop, used in another."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


def _statements(sql: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN … END;) whole."""
    out: list[str] = []
    buf: list[str] = []
    in_trigger = False
    for line in sql.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("--")):
            continue
        buf.append(line)
        upper = stripped.upper()
        if upper.startswith("CREATE TRIGGER"):
            in_trigger = True
        if in_trigger:
            if upper.endswith("END;"):
                out.append("\n".join(buf))
                buf, in_trigger = [], False
        elif stripped.endswith(";"):
            out.append("\n".join(buf))
            buf = []
    if buf and "".join(buf).strip():
        out.append("\n".join(buf))
    return out
