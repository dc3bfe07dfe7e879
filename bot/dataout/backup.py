"""`diarybot backup`: a consistent copy of the live database, checked before it is kept.

SQLite's online backup API copies the database page by page under a read transaction, so the
copy is consistent even while the bot keeps writing (WAL mode lets both run). The copy is made
under a temporary name, switched to a single self-contained file (journal_mode=DELETE, no -wal
beside it), checked with `PRAGMA integrity_check` and the audit chain, flushed to disk, and
only then renamed to the requested name: a backup file that exists is a complete one.
An existing file is not overwritten (it may be the only good copy) unless `--force`; the
database itself, its WAL and its key file never are. The copy is 0600.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from bot.dataout.exports import OutputError, check_target, protected
from storage import audit, keys


class BackupError(RuntimeError):
    """The backup could not be made; nothing was left under the requested name."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    sha256: str
    chain: audit.VerifyResult
    head: str | None  # "<id> <hash>": the audit trail's head in the copy


def _source_uri(path: str) -> str:
    return f"{Path(os.path.abspath(path)).as_uri()}?mode=ro"


def _copy(source: str, tmp: Path) -> None:
    """Copy and check (runs in a worker thread: plain sqlite3, its own connections)."""
    src = sqlite3.connect(_source_uri(source), uri=True)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            rows = [r[0] for r in dst.execute("PRAGMA integrity_check").fetchall()]
        finally:
            dst.close()
    finally:
        src.close()
    if rows != ["ok"]:
        raise BackupError(f"the copy failed PRAGMA integrity_check: {'; '.join(rows[:5])}")
    with tmp.open("rb") as fp:
        os.fsync(fp.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prepare(out: Path, db_path: str, force: bool) -> Path:
    try:
        check_target(out, force=force, never=protected(db_path))
    except OutputError as exc:
        raise BackupError(str(exc)) from None
    if not out.parent.is_dir():
        raise BackupError(f"folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.part")
    tmp.unlink(missing_ok=True)
    # Private from the first byte (SQLite gives its journal the same mode): patients' answers.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return tmp


def _finish(tmp: Path, out: Path, force: bool) -> tuple[int, str]:
    if out.exists() and not force:  # appeared while we were copying
        tmp.unlink(missing_ok=True)
        raise BackupError(f"{out} already exists (use --force to replace it)")
    tmp.replace(out)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)
    return out.stat().st_size, _sha256(out)


async def _chain(path: Path, key: bytes) -> tuple[audit.VerifyResult, str | None]:
    conn = await aiosqlite.connect(str(path))
    try:
        conn.row_factory = aiosqlite.Row
        return await audit.verify(conn, key=key), await audit.head(conn)
    finally:
        await conn.close()


async def backup(db_path: str, out: Path, *, force: bool = False) -> BackupResult:
    """Copy the database to `out` (0600). Refuses a file that exists unless `force`, and the
    database's own files always."""
    tmp = await asyncio.to_thread(_prepare, out, db_path, force)
    try:
        await asyncio.to_thread(_copy, db_path, tmp)
        chain, head = await _chain(tmp, await asyncio.to_thread(keys.load, db_path))
        size, digest = await asyncio.to_thread(_finish, tmp, out, force)
    except sqlite3.Error as exc:
        await asyncio.to_thread(tmp.unlink, True)
        raise BackupError(f"backup failed: {exc}") from None
    except BaseException:
        await asyncio.to_thread(tmp.unlink, True)
        raise
    return BackupResult(out, size, digest, chain, head)
