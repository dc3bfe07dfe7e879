"""Upgrades: a migration runs only after a verified backup of the database as it was.

`diarybot run` and `diarybot migrate` open the database with `before_migrate=backup_first(...)`;
every other command refuses an old database (storage.db.MigrationNeeded) and changes nothing.
The backup goes to the backup folder as `diarybot-before-migration-<old>-to-<new>-<time>.sqlite3`
(never pruned by the daily schedule) with its audit head beside it. If the copy cannot be made
or fails PRAGMA integrity_check, the migration does not run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from bot.clock import Clock
from bot.ops.backups import STAMP, Taken, take
from storage.db import BeforeMigrate, Database

log = logging.getLogger(__name__)


@dataclass
class BackupFirst:
    """`before_migrate` for Database.open: what it took is kept in `taken` (CLI, tests)."""

    folder: Path
    clock: Clock
    taken: list[Taken] = field(default_factory=list)

    async def __call__(self, db: Database, old: int, new: int) -> None:
        now = self.clock.now()
        name = f"diarybot-before-migration-{old:04d}-to-{new:04d}-{now.strftime(STAMP)}.sqlite3"
        taken = await take(db.path, self.folder, name, now)  # BackupError stops the migration
        chain = taken.result.chain
        if not chain.ok:
            log.error(
                "the audit trail of the database being migrated is broken at entry %s: %s"
                " (backup kept: %s)",
                chain.first_bad_id,
                chain.problem,
                taken.result.path,
            )
        log.info(
            "migrating %s from schema %d to %d; backup first: %s",
            db.path,
            old,
            new,
            taken.result.path,
        )
        self.taken.append(taken)


def backup_first(folder: Path, clock: Clock) -> BeforeMigrate:
    return BackupFirst(folder, clock)
