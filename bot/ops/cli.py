"""`diarybot migrate` and `diarybot restore`: commands that manage the database file itself.

diarybot migrate                 upgrade the database schema (a verified backup first)
diarybot restore --check FILE    restore into a temporary file; report counts and chain status
diarybot restore FILE            replace the database with FILE (bot stopped), keeping the old

They open the database themselves (not through the runtime every other command gets), set
`standalone(args, settings, study)` instead of `func`, and refuse while a bot holds the lock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from bot.cliargs import UsageError
from bot.clock import SystemClock
from bot.config import Settings
from bot.dataout.backup import BackupError
from bot.domain.study import Study
from bot.ops import lock
from bot.ops.backups import PolicyError, policy_from_env
from bot.ops.restore import RestoreError, check, restore
from bot.ops.upgrade import BackupFirst
from storage import keys
from storage.db import Database


def backup_folder(settings: Settings) -> Path:
    """Where pre-migration backups go: the scheduled backups' folder (even when those are off)."""
    try:
        policy = policy_from_env(settings.db_path)
    except PolicyError:
        policy = None
    return policy.folder if policy else settings.db_path.absolute().parent / "backups"


def _same_path(a: Path, b: Path) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def _refuse_while_running(db: Path, what: str) -> None:
    if lock.is_locked(db):
        raise UsageError(f"the bot is running on {db}: stop it before {what}")


async def cmd_migrate(args: argparse.Namespace, settings: Settings, study: Study) -> int:
    db_path = settings.db_path
    if not db_path.exists():
        raise UsageError(f"no database {db_path} (DIARYBOT_DB)")
    _refuse_while_running(db_path, "migrating")
    first = BackupFirst(backup_folder(settings), SystemClock())
    with lock.acquire(db_path):
        try:
            db = await Database.open(db_path, migrate=True, before_migrate=first)
        except BackupError as exc:
            print(f"diarybot: migration not run: the backup failed: {exc}", file=sys.stderr)
            return 1
        try:
            version = await db.schema_version()
        finally:
            await db.close()
    if not first.taken:
        print(f"database {db_path} is up to date (schema version {version})")
        return 0
    taken = first.taken[0]
    print(f"backup before migrating: {taken.result.path} (audit head in {taken.head_file.name})")
    print(f"database {db_path} migrated to schema version {version}")
    return 0


async def cmd_restore(args: argparse.Namespace, settings: Settings, study: Study) -> int:
    file = Path(args.file)
    if args.check:
        try:
            key = await asyncio.to_thread(keys.load, settings.db_path)
            report = await check(file, key)
        except RestoreError as exc:
            raise UsageError(str(exc)) from None
        print(f"restore check (a temporary copy, {file} not changed):")
        for line in report.lines():
            print(f"  {line}")
        if not report.ok:
            print(f"diarybot: {file} failed the check", file=sys.stderr)
            return 1
        print("ok: this backup can be restored")
        return 0
    db_path = settings.db_path
    _refuse_while_running(db_path, "restoring")
    if _same_path(file, db_path):
        raise UsageError("the backup file is the database itself")
    with lock.acquire(db_path):
        try:
            done = await restore(file, db_path, SystemClock().now())
        except RestoreError as exc:
            raise UsageError(str(exc)) from None
    for line in done.report.lines():
        print(f"  {line}")
    if done.replaced is not None:
        print(f"the database that was in place is kept as {done.replaced}")
    print(f"restored {file} -> {db_path}")
    if done.report.schema_version < settings_latest():
        print("this backup has an older schema: `diarybot run` (or `diarybot migrate`) upgrades it")
    return 0


def settings_latest() -> int:
    from storage.db import latest_version

    return latest_version()


def add(sub: Any) -> None:
    m = sub.add_parser(
        "migrate", help="upgrade the database schema (takes a verified backup first)"
    )
    m.set_defaults(standalone=cmd_migrate)
    r = sub.add_parser(
        "restore", help="restore a backup (the bot must be stopped); --check only inspects it"
    )
    r.add_argument("file", help="a backup file (e.g. backups/diarybot-20261210T193000Z.sqlite3)")
    r.add_argument(
        "--check",
        action="store_true",
        help="restore into a temporary file and report counts and audit-chain status only",
    )
    r.set_defaults(standalone=cmd_restore)
