"""Command-line subcommands of data out: `audit`, `export`, `backup`.

diarybot audit verify
diarybot audit show --subject RP-001
diarybot export --format csv|odm|fhir --out PATH [--subject RP-001] [--since 2026-12-01]
diarybot backup --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from datetime import date
from pathlib import Path
from typing import Any

from bot.cliargs import UsageError, iso_date
from bot.dataout import audit_cli, exports
from bot.dataout.backup import BackupError, backup
from bot.dataout.dataset import UnknownSubject
from bot.services.runtime import Runtime
from storage import audit

ACTOR = "cli"


def _date(text: str) -> date:
    return iso_date(text)


async def cmd_export(args: argparse.Namespace, rt: Runtime) -> int:
    now = rt.now()
    try:
        export = await exports.run(
            rt.db.path, rt.study, now, args.format, subject=args.subject, since=args.since
        )
    except UnknownSubject:
        raise UsageError(f"no subject {args.subject!r}") from None
    never = exports.protected(rt.db.path)
    try:
        written = await asyncio.to_thread(
            functools.partial(exports.write, force=args.force, never=never),
            export,
            Path(args.out),
        )
    except exports.OutputError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    async with rt.db.transaction() as conn:
        await exports.record(
            conn,
            now,
            ACTOR,
            export,
            subject=args.subject,
            since=args.since,
            destination=", ".join(p.name for p in written),
        )
    print(
        f"{args.format} export: {export.subjects} subjects, {export.diaries} diaries"
        f" -> {', '.join(str(p) for p in written)}"
    )
    _print_head("audit trail head in the export", export.audit_head)
    return 0


def _print_head(label: str, head: str | None) -> None:
    if head:
        number, _, digest = head.partition(" ")
        print(f"{label}: {number}:{digest}")
        print(f"  check later with: diarybot audit verify --expect-head {number}:{digest}")


async def cmd_backup(args: argparse.Namespace, rt: Runtime) -> int:
    try:
        result = await backup(rt.db.path, Path(args.out), force=args.force)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    async with rt.db.transaction() as conn:
        await audit.record(
            conn,
            rt.now(),
            ACTOR,
            "backup",
            entity=f"backup:{result.path.name}",
            new={"bytes": result.size, "sha256": result.sha256, "audit_head": result.head},
        )
    print(f"backup written: {result.path} ({result.size} bytes, sha256 {result.sha256})")
    _print_head("audit trail head in the backup", result.head)
    if result.chain.ok:
        print(f"audit trail in the backup: {result.chain.checked} entries, chain intact")
    else:
        print(
            f"WARNING: the audit trail in the backup is broken at entry"
            f" {result.chain.first_bad_id}: {result.chain.problem}",
            file=sys.stderr,
        )
    return 0


def add(sub: Any) -> None:
    """Add subcommands to the `diarybot` parser; each sets `func(args, rt) -> int`."""
    audit_cli.add(sub)
    e = sub.add_parser("export", help="export study data: CSV, CDISC ODM 1.3.2 or FHIR R4B")
    e.add_argument("--format", choices=exports.FORMATS, required=True)
    e.add_argument(
        "--out",
        required=True,
        help="CSV: a folder (or a .zip file); ODM and FHIR: a file (or a .zip file)",
    )
    e.add_argument("--subject", help="only this subject")
    e.add_argument("--since", type=_date, help="only diaries on or after this date (YYYY-MM-DD)")
    e.add_argument("--force", action="store_true", help="replace files that exist")
    e.set_defaults(func=cmd_export)
    b = sub.add_parser("backup", help="consistent copy of the database while the bot runs")
    b.add_argument("--out", required=True, help="new file to write")
    b.add_argument(
        "--force", action="store_true", help="replace a file that exists (never the database)"
    )
    b.set_defaults(func=cmd_backup)
