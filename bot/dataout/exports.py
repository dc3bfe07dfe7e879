"""Running an export: read a snapshot, build the files off the event loop, record it, write it.

Shared by `diarybot export` and the staff `/export` command, so both produce the same files and
both leave the same audit entry: who exported which data, when, and the SHA-256 of every file
(what left the system can be proven later).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import aiosqlite

from bot.dataout import exports_csv, fhir, odm
from bot.dataout.dataset import Dataset, load, snapshot
from bot.domain.study import Study
from storage import audit

FORMATS = ("csv", "odm", "fhir")
ZIP_ABOVE = 5 * 1024 * 1024  # bytes: a single larger file goes to a chat zipped


@dataclass(frozen=True)
class Export:
    fmt: str
    files: dict[str, bytes]  # file name → content
    subjects: int
    diaries: int
    audit_head: str | None = None  # "<id> <hash>" of the audit trail in the exported snapshot

    def digests(self) -> dict[str, str]:
        return {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%MZ")


def _build(fmt: str, ds: Dataset, study: Study) -> dict[str, bytes]:
    stamp = _stamp(ds.created_at)
    if fmt == "csv":
        return exports_csv.build(ds, study)
    if fmt == "odm":
        return {f"{study.id}_odm_{stamp}.xml": odm.build(ds, study)}
    if fmt == "fhir":
        return {f"{study.id}_fhir_{stamp}.json": fhir.build(ds, study)}
    raise ValueError(f"unknown export format {fmt!r}")


async def run(
    db_path: str | Path,
    study: Study,
    now: datetime,
    fmt: str,
    *,
    subject: str | None = None,
    since: date | None = None,
) -> Export:
    """Build an export from a consistent snapshot. Raises UnknownSubject for an unknown ID."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    async with snapshot(db_path) as conn:
        # ODM carries every audit record; FHIR needs it to mark corrected diaries "amended".
        history = fmt in ("odm", "fhir")
        ds = await load(conn, study, now, subject=subject, since=since, with_history=history)
        head = await audit.head(conn)
    files = await asyncio.to_thread(_build, fmt, ds, study)
    return Export(
        fmt=fmt,
        files=files,
        subjects=len(ds.subjects),
        diaries=sum(len(s.diaries) for s in ds.subjects),
        audit_head=head,
    )


async def record(
    conn: aiosqlite.Connection,
    now: datetime,
    actor: str,
    export: Export,
    *,
    subject: str | None,
    since: date | None,
    destination: str,
) -> None:
    """The audit entry of an export. Call inside the transaction that hands the files over."""
    await audit.record(
        conn,
        now,
        actor,
        "export",
        subject=subject,
        entity=f"export:{export.fmt}",
        new={
            "format": export.fmt,
            "subject": subject,
            "since": since.isoformat() if since else None,
            "subjects": export.subjects,
            "diaries": export.diaries,
            "to": destination,
            "sha256": export.digests(),
            "audit_head": export.audit_head,
        },
    )


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def one_document(export: Export, study: Study, now: datetime) -> tuple[str, bytes]:
    """What a chat gets: the file itself if small, else a zip (CSV's three files, or a large
    ODM/FHIR file: XML and JSON shrink about tenfold, under Telegram's 50 MB limit)."""
    if len(export.files) == 1:
        name, data = next(iter(export.files.items()))
        if len(data) <= ZIP_ABOVE:
            return name, data
    return f"{study.id}_{export.fmt}_{_stamp(now)}.zip", zip_bytes(export.files)


class OutputError(ValueError):
    """The output path is refused (it exists, or it is the database); nothing was written."""


def protected(db_path: str | Path) -> list[Path]:
    """Files an export or a backup must never replace, even with --force: the database, its
    WAL, shared memory and journal, and the audit key file beside it."""
    return [Path(f"{db_path}{suffix}") for suffix in ("", "-wal", "-shm", "-journal", ".key")]


def check_target(path: Path, *, force: bool, never: list[Path]) -> None:
    """Refuse `path` if it is one of `never`, or exists and `force` is not given."""
    real = os.path.realpath(path)
    for other in never:
        if real == os.path.realpath(other) or (
            path.exists() and other.exists() and os.path.samefile(path, other)
        ):
            raise OutputError(f"{path} is the database or one of its files: never overwritten")
    if path.is_dir():
        raise OutputError(f"{path} is a folder")
    if path.exists() and not force:
        raise OutputError(f"{path} already exists (use --force to replace it)")


def make_private_dirs(folder: Path) -> None:
    """`mkdir -p` where every folder made is 0700 (the ones that exist are left alone)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask; this is not


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private whatever the umask
    with os.fdopen(fd, "wb") as fp:
        fp.write(data)
        fp.flush()
        os.fsync(fp.fileno())
    tmp.replace(path)


def targets(export: Export, out: Path) -> list[Path]:
    """Where `write` puts the files: a .zip file, a folder's files (CSV), or one file."""
    if out.suffix.lower() == ".zip":
        return [out]
    if len(export.files) > 1 or out.is_dir():
        return [out / name for name in export.files]
    return [out]


def write(
    export: Export, out: Path, *, force: bool = False, never: list[Path] | None = None
) -> list[Path]:
    """Write to `out`: a .zip file, a directory (CSV: three files), or one file (ODM, FHIR).

    Refuses (OutputError, nothing written) a file that exists unless `force`, and any of
    `never` (the database's files) always. Files are 0600, new folders 0700. Each file is
    written to a temporary name and renamed, so a reader never sees half a file.
    """
    paths = targets(export, out)
    for path in paths:
        check_target(path, force=force, never=never or [])
    make_private_dirs(paths[0].parent)
    if out.suffix.lower() == ".zip":
        _write_atomic(out, zip_bytes(export.files))
        return [out]
    if len(paths) > 1 or paths[0].parent == out:
        for path, data in zip(paths, export.files.values(), strict=True):
            _write_atomic(path, data)
        return paths
    _write_atomic(out, next(iter(export.files.values())))
    return [out]


class RequestError(ValueError):
    """A staff member's /export arguments are wrong; `code` says which message to show."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code  # usage | date | twice


@dataclass(frozen=True)
class Request:
    fmt: str
    subject: str | None = None
    since: date | None = None


def parse_request(args: list[str]) -> Request:
    """`FORMAT [SUBJECT] [YYYY-MM-DD]`, subject and date in either order. Pure."""
    if not args or args[0].lower() not in FORMATS or len(args) > 3:
        raise RequestError("usage")
    subject: str | None = None
    since: date | None = None
    for arg in args[1:]:
        if arg[:1].isdigit():
            if since is not None:
                raise RequestError("twice")
            try:
                since = date.fromisoformat(arg)
            except ValueError:
                raise RequestError("date") from None
        else:
            if subject is not None:
                raise RequestError("twice")
            subject = arg
    return Request(args[0].lower(), subject, since)
