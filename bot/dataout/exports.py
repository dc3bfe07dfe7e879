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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fp:
        fp.write(data)
        fp.flush()
        os.fsync(fp.fileno())
    tmp.replace(path)


def write(export: Export, out: Path) -> list[Path]:
    """Write to `out`: a .zip file, a directory (CSV: three files), or one file (ODM, FHIR).

    Each file is written to a temporary name and renamed, so a reader never sees half a file.
    """
    if out.suffix.lower() == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(out, zip_bytes(export.files))
        return [out]
    if len(export.files) > 1 or out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in export.files.items():
            _write_atomic(out / name, data)
            written.append(out / name)
        return written
    out.parent.mkdir(parents=True, exist_ok=True)
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
