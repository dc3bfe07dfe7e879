"""Restores: check a backup in a scratch copy; put it in place of the database, keeping the old.

`check()` copies the file with SQLite's backup API into a private temporary folder (so the
file under test is never opened for writing), runs PRAGMA integrity_check, counts what it holds
and verifies its audit chain (storage.audit.verify), and compares the chain's head with the
`.head.json` written beside scheduled backups when there is one.

`restore()` is for a stopped bot only (the caller checks the lock): it checks the file first,
renames the current database (and its -wal/-shm) to `<db>.replaced-<time>`, writes the copy
under a temporary name, flushes it and renames it into place, then records the restore in the
restored database's audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiosqlite

from bot.dataout.backup import _sha256
from bot.ops.backups import HEAD_SUFFIX, STAMP
from storage import audit, keys
from storage.db import latest_version

COUNTS = {
    "patients": "SELECT COUNT(*) FROM patients",
    "diaries": "SELECT COUNT(*) FROM occurrences WHERE status = 'completed'",
    "answers": "SELECT COUNT(*) FROM answers WHERE submitted_at IS NOT NULL",
    "alerts": "SELECT COUNT(*) FROM alerts",
    "audit entries": "SELECT COUNT(*) FROM audit",
}


class RestoreError(RuntimeError):
    """The file cannot be restored (the message says why); nothing was changed."""


@dataclass
class Report:
    file: Path
    sha256: str
    integrity: list[str]
    schema_version: int
    counts: dict[str, int | None] = field(default_factory=dict)
    chain: audit.VerifyResult | None = None
    head: str | None = None
    recorded_head: str | None = None  # from FILE.head.json, when present

    @property
    def head_matches(self) -> bool | None:
        if self.recorded_head is None:
            return None
        return self.recorded_head == self.head

    @property
    def problems(self) -> list[str]:
        out = []
        if self.integrity != ["ok"]:
            out.append(f"PRAGMA integrity_check: {'; '.join(self.integrity[:5])}")
        if self.chain is not None and not self.chain.ok:
            out.append(
                f"audit chain broken at entry {self.chain.first_bad_id}: {self.chain.problem}"
            )
        if self.head_matches is False:
            out.append(
                f"audit head {self.head} differs from the one recorded beside the backup"
                f" ({self.recorded_head})"
            )
        if self.schema_version > latest_version():
            out.append(
                f"schema version {self.schema_version} is newer than this diarybot"
                f" ({latest_version()})"
            )
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        counts = ", ".join(f"{name}: {'-' if n is None else n}" for name, n in self.counts.items())
        if self.chain is None:
            chain = "not checked"
        elif self.chain.ok:
            chain = f"intact ({self.chain.checked} entries, head {self.head or '-'})"
        else:
            chain = f"BROKEN at entry {self.chain.first_bad_id}: {self.chain.problem}"
        out = [
            f"file:           {self.file} (sha256 {self.sha256})",
            f"integrity:      {'ok' if self.integrity == ['ok'] else 'FAILED'}",
            f"schema version: {self.schema_version} (this diarybot: {latest_version()})",
            f"contents:       {counts}",
            f"audit chain:    {chain}",
        ]
        if self.head_matches is not None:
            out.append(
                "recorded head:  "
                + ("matches" if self.head_matches else f"DIFFERS: {self.recorded_head}")
            )
        return out


def _copy_into(source: Path, target: Path) -> None:
    """SQLite backup API: `target` becomes a self-contained copy of `source` (opened read-only)."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    src = sqlite3.connect(f"{source.absolute().as_uri()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def _inspect(copy: Path) -> tuple[list[str], int, dict[str, int | None]]:
    conn = sqlite3.connect(copy)
    try:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        counts: dict[str, int | None] = {}
        for name, sql in COUNTS.items():
            try:
                counts[name] = int(conn.execute(sql).fetchone()[0])
            except sqlite3.OperationalError:  # a table an old schema did not have
                counts[name] = None
    finally:
        conn.close()
    return integrity, version, counts


async def _chain(copy: Path, key: bytes) -> tuple[audit.VerifyResult, str | None]:
    conn = await aiosqlite.connect(str(copy))
    try:
        conn.row_factory = aiosqlite.Row
        return await audit.verify(conn, key=key), await audit.head(conn)
    finally:
        await conn.close()


def _recorded_head(file: Path) -> str | None:
    beside = file.with_name(file.name + HEAD_SUFFIX)
    try:
        value = json.loads(beside.read_text(encoding="utf-8")).get("audit_head")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


async def _check_copy(file: Path, copy: Path, key: bytes) -> Report:
    if not await asyncio.to_thread(file.is_file):
        raise RestoreError(f"{file}: no such file")
    try:
        await asyncio.to_thread(_copy_into, file, copy)
        integrity, version, counts = await asyncio.to_thread(_inspect, copy)
    except sqlite3.DatabaseError as exc:
        raise RestoreError(f"{file}: not a usable SQLite database: {exc}") from None
    report = Report(file, await asyncio.to_thread(_sha256, file), integrity, version, counts)
    if integrity == ["ok"]:
        try:
            report.chain, report.head = await _chain(copy, key)
        except sqlite3.DatabaseError as exc:
            report.integrity = [f"audit trail unreadable: {exc}"]
    report.recorded_head = await asyncio.to_thread(_recorded_head, file)
    return report


async def check(file: Path, key: bytes) -> Report:
    """Restore into a temporary file and report what it holds; nothing else is touched.
    `key`: the study's audit key (storage/keys.py), which signed the backup's audit trail."""
    folder = Path(tempfile.mkdtemp(prefix="diarybot-restore-"))  # 0700
    try:
        return await _check_copy(file, folder / "restored.sqlite3", key)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


@dataclass(frozen=True)
class Restored:
    report: Report
    replaced: Path | None  # where the database that was in place is kept


def _set_aside(db: Path, now: datetime) -> Path | None:
    """Rename the database and its WAL files to `<db>.replaced-<time>` (after a checkpoint, so
    the kept file holds everything that was committed)."""
    if not db.exists():
        return None
    with contextlib.suppress(sqlite3.Error):
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    kept = db.with_name(f"{db.name}.replaced-{now.strftime(STAMP)}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = Path(f"{db}{suffix}")
        if part.exists():
            part.replace(Path(f"{kept}{suffix}"))
    return kept


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _record(db: Path, now: datetime, report: Report, kept: Path | None, key: bytes) -> None:
    conn = await aiosqlite.connect(str(db), isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        keys.register(conn, key)
        await conn.execute("BEGIN IMMEDIATE")
        await audit.record(
            conn,
            now,
            "cli",
            "restore",
            entity=f"backup:{report.file.name}",
            new={
                "sha256": report.sha256,
                "audit_head": report.head,
                "replaced": kept.name if kept else None,
            },
        )
        await conn.execute("COMMIT")
    finally:
        await conn.close()


async def restore(file: Path, db: Path, now: datetime) -> Restored:
    """Put a checked copy of `file` in place of `db`, keeping the old one. Bot must be stopped."""
    part = db.with_name(f".{db.name}.restoring")
    key = await asyncio.to_thread(keys.load, db)
    try:
        report = await _check_copy(file, part, key)
        if not report.ok:
            raise RestoreError(f"{file} failed the check: {'; '.join(report.problems)}")
        with part.open("rb") as fp:
            os.fsync(fp.fileno())
        kept = await asyncio.to_thread(_set_aside, db, now)
        await asyncio.to_thread(part.replace, db)
        await asyncio.to_thread(_fsync_dir, db.parent)
    finally:
        await asyncio.to_thread(part.unlink, True)
    await _record(db, now, report, kept, key)
    return Restored(report, kept)
