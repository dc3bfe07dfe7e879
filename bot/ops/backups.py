"""Backups the bot takes by itself: daily at a quiet hour, verified, pruned, shipped by a hook.

- `take()` writes one verified backup (bot.dataout.backup: online copy, PRAGMA integrity_check,
  the audit chain verified on the copy) and the head of its audit chain beside it in
  `<file>.head.json`, so a later copy can be checked against a head kept elsewhere.
- `BackupSchedule` is a scheduler duty: on the first tick with no backup in the folder it takes
  one at once, then one a day at the quiet hour (study time zone), catching up after downtime.
  Retention keeps the newest backup of each of the last 14 days and of each of the last 24
  months; only files this schedule named are ever deleted (pre-migration and hand-made backups
  stay). After each backup the optional hook (`DIARYBOT_BACKUP_HOOK`, e.g. an rclone or rsync
  to another machine) runs in the background with the backup's path as its last argument and in
  `DIARYBOT_BACKUP_FILE`. A failed backup or hook is logged as an error and never stops the bot.
- Backup files and their head files are 0600, the folder 0700.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shlex
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import aiosqlite

from bot.clock import iso
from bot.dataout.backup import BackupError, BackupResult, _source_uri, backup
from bot.domain.study import parse_hhmm
from storage import audit

if TYPE_CHECKING:
    from bot.services.runtime import Runtime

log = logging.getLogger(__name__)

SCHEDULED = re.compile(r"^diarybot-(\d{8}T\d{6}Z)\.sqlite3$")
STAMP = "%Y%m%dT%H%M%SZ"
HEAD_SUFFIX = ".head.json"
RETRY_AFTER = timedelta(hours=1)
HOOK_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Policy:
    folder: Path
    at: time = time(3, 30)  # the quiet hour, in the study's time zone
    keep_daily: int = 14
    keep_monthly: int = 24
    hook: str | None = None
    hook_timeout: float = HOOK_TIMEOUT


class PolicyError(ValueError):
    """A backup setting in the environment is invalid (the message names it)."""


def policy_from_env(db_path: Path, env: dict[str, str] | None = None) -> Policy | None:
    """The schedule `diarybot run` uses: on by default, in `backups/` beside the database.

    DIARYBOT_BACKUP_DIR (folder, or "off"), DIARYBOT_BACKUP_AT (HH:MM, default 03:30 study
    time), DIARYBOT_BACKUP_KEEP_DAILY (14), DIARYBOT_BACKUP_KEEP_MONTHLY (24),
    DIARYBOT_BACKUP_HOOK (a command; the backup's path is appended).
    """
    e = dict(os.environ) if env is None else env
    folder = e.get("DIARYBOT_BACKUP_DIR") or str(db_path.absolute().parent / "backups")
    if folder.strip().lower() == "off":
        return None
    try:
        at = parse_hhmm(e.get("DIARYBOT_BACKUP_AT") or "03:30")
    except ValueError:
        raise PolicyError("DIARYBOT_BACKUP_AT must be HH:MM (24 h)") from None
    keep = {}
    for key, default in (("DAILY", 14), ("MONTHLY", 24)):
        text = e.get(f"DIARYBOT_BACKUP_KEEP_{key}") or str(default)
        if not text.isdigit() or (key == "DAILY" and int(text) < 1):
            raise PolicyError(f"DIARYBOT_BACKUP_KEEP_{key} must be a whole number (daily ≥ 1)")
        keep[key] = int(text)
    hook = (e.get("DIARYBOT_BACKUP_HOOK") or "").strip() or None
    return Policy(Path(folder), at, keep["DAILY"], keep["MONTHLY"], hook)


def private_folder(folder: Path) -> Path:
    """Create the folder (0700) if needed; an existing folder keeps its mode."""
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    return folder


@dataclass(frozen=True)
class Taken:
    result: BackupResult
    head_file: Path
    head: str | None


async def _copy_head(path: Path) -> str | None:
    conn = await aiosqlite.connect(_source_uri(str(path)), uri=True)
    try:
        return await audit.head(conn)
    finally:
        await conn.close()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fp:
        fp.write(data)
        fp.flush()
        os.fsync(fp.fileno())
    tmp.replace(path)


async def take(db_path: str, folder: Path, name: str, now: datetime) -> Taken:
    """One verified backup `folder/name` and its `name.head.json`; BackupError if it failed."""
    try:
        await asyncio.to_thread(private_folder, folder)
    except OSError as exc:
        raise BackupError(f"cannot create the backup folder {folder}: {exc.strerror}") from None
    result = await backup(db_path, folder / name)
    head = await _copy_head(result.path)
    info = {
        "file": result.path.name,
        "created_at": iso(now),
        "bytes": result.size,
        "sha256": result.sha256,
        "audit_head": head,  # "<id> <hash>" of the last audit entry in the copy
        "audit_entries": result.chain.checked,
        "audit_chain_ok": result.chain.ok,
        "audit_problem": result.chain.problem,
    }
    head_file = result.path.with_name(result.path.name + HEAD_SUFFIX)
    data = (json.dumps(info, indent=1) + "\n").encode()
    await asyncio.to_thread(_write_private, head_file, data)
    return Taken(result, head_file, head)


# --------------------------------------------------------------------------- retention


def scheduled_backups(folder: Path) -> list[tuple[datetime, Path]]:
    """The backups this schedule wrote, oldest first (by the time in their name)."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = SCHEDULED.match(p.name)
        if m:
            found.append((datetime.strptime(m.group(1), STAMP).replace(tzinfo=ZoneInfo("UTC")), p))
    return sorted(found)


def to_keep(stamps: list[datetime], tz: str, keep_daily: int, keep_monthly: int) -> set[datetime]:
    """The newest backup of each of the last `keep_daily` days and `keep_monthly` months
    (days and months that have a backup, in the study's time zone)."""
    zone = ZoneInfo(tz)
    newest_per_day: dict[date, datetime] = {}
    newest_per_month: dict[tuple[int, int], datetime] = {}
    for s in sorted(stamps):
        local = s.astimezone(zone).date()
        newest_per_day[local] = s
        newest_per_month[(local.year, local.month)] = s
    days = sorted(newest_per_day, reverse=True)[:keep_daily]
    months = sorted(newest_per_month, reverse=True)[:keep_monthly]
    return {newest_per_day[d] for d in days} | {newest_per_month[m] for m in months}


def prune(folder: Path, tz: str, keep_daily: int, keep_monthly: int) -> list[Path]:
    """Delete scheduled backups (and their head files) that retention no longer keeps."""
    found = scheduled_backups(folder)
    keep = to_keep([s for s, _ in found], tz, keep_daily, keep_monthly)
    removed = []
    for stamp, path in found:
        if stamp not in keep:
            path.unlink(missing_ok=True)
            path.with_name(path.name + HEAD_SUFFIX).unlink(missing_ok=True)
            removed.append(path)
    return removed


# --------------------------------------------------------------------------- the schedule


def next_quiet(after: datetime, at: time, tz: str) -> datetime:
    """The first moment strictly after `after` when the study's clock shows `at`."""
    zone = ZoneInfo(tz)
    day = after.astimezone(zone).date()
    while True:
        candidate = datetime.combine(day, at, tzinfo=zone)
        if candidate > after:
            return candidate.astimezone(ZoneInfo("UTC"))
        day += timedelta(days=1)


@dataclass
class HookRun:
    backup: Path
    returncode: int | None
    output: str


@dataclass
class BackupSchedule:
    rt: Runtime
    policy: Policy | None = None
    hook_runs: list[HookRun] = field(default_factory=list)
    _hooks: set[asyncio.Task[None]] = field(default_factory=set)
    _last: datetime | None = None
    _scanned: bool = False
    _retry_at: datetime | None = None

    @property
    def last_at(self) -> datetime | None:
        """When the newest scheduled backup was taken (health and metrics may show it)."""
        self.due_at()
        return self._last

    def configure(self, policy: Policy | None) -> None:
        self.policy = policy
        self._scanned = False
        self._last = None

    def due_at(self) -> datetime | None:
        """When the next backup is due (None: off; the epoch: no backup yet, due now)."""
        if self.policy is None:
            return None
        if not self._scanned:
            found = scheduled_backups(self.policy.folder)
            self._last = found[-1][0] if found else None
            self._scanned = True
        if self._last is None:
            due = datetime.min.replace(tzinfo=ZoneInfo("UTC"))
        else:
            due = next_quiet(self._last, self.policy.at, self.rt.study.timezone)
        if self._retry_at is not None and self._retry_at > due:
            return self._retry_at
        return due

    async def next_wake(self, now: datetime) -> datetime | None:
        due = self.due_at()
        return due if due is not None and due > now else None  # due now: this tick takes it

    async def on_tick(self, now: datetime) -> None:
        due = self.due_at()
        if due is None or now < due:
            return
        try:
            await self.run(now)
        except Exception:  # a backup must never stop the bot; say it loudly instead
            log.exception("BACKUP FAILED: the scheduled backup could not be taken")
            self._retry_at = now + RETRY_AFTER

    async def run(self, now: datetime) -> Taken | None:
        policy = self.policy
        assert policy is not None
        name = f"diarybot-{now.strftime(STAMP)}.sqlite3"
        try:
            taken = await take(self.rt.db.path, policy.folder, name, now)
        except (BackupError, OSError) as exc:
            log.error("BACKUP FAILED: %s (next attempt in an hour)", exc)
            self._retry_at = now + RETRY_AFTER
            return None
        self._retry_at = None
        self._last = now
        result = taken.result
        async with self.rt.db.transaction() as conn:
            await audit.record(
                conn,
                now,
                "system",
                "backup",
                entity=f"backup:{result.path.name}",
                new={"bytes": result.size, "sha256": result.sha256, "audit_head": taken.head},
            )
        if result.chain.ok:
            log.info(
                "backup %s verified (%d bytes, audit chain intact: %d entries)",
                result.path,
                result.size,
                result.chain.checked,
            )
        else:
            log.error(
                "BACKUP %s: the audit trail in it is broken at entry %s: %s",
                result.path,
                result.chain.first_bad_id,
                result.chain.problem,
            )
        removed = await asyncio.to_thread(
            prune, policy.folder, self.rt.study.timezone, policy.keep_daily, policy.keep_monthly
        )
        for path in removed:
            log.info("old backup %s removed (retention)", path.name)
        if policy.hook:
            task = asyncio.create_task(self._run_hook(policy, taken))
            self._hooks.add(task)
            task.add_done_callback(self._hooks.discard)
        return taken

    async def wait_hooks(self) -> None:
        """Wait for hook commands still running (tests; a clean stop)."""
        while self._hooks:
            await asyncio.gather(*list(self._hooks))

    async def _run_hook(self, policy: Policy, taken: Taken) -> None:
        assert policy.hook is not None
        path = taken.result.path
        argv = [*shlex.split(policy.hook), str(path)]
        env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
        env["DIARYBOT_BACKUP_FILE"] = str(path)
        env["DIARYBOT_BACKUP_HEAD"] = str(taken.head_file)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
        except OSError as exc:
            log.error("BACKUP HOOK FAILED to start (%s): %s", argv[0], exc)
            self.hook_runs.append(HookRun(path, None, str(exc)))
            return
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), policy.hook_timeout)
        except TimeoutError:
            proc.kill()
            await proc.communicate()
            log.error(
                "BACKUP HOOK FAILED: still running after %.0f s, stopped", policy.hook_timeout
            )
            self.hook_runs.append(HookRun(path, None, "timeout"))
            return
        text = out.decode("utf-8", "replace").strip()
        self.hook_runs.append(HookRun(path, proc.returncode, text))
        if proc.returncode:
            tail = " | ".join(text.splitlines()[-5:])
            log.error(
                "BACKUP HOOK FAILED (exit %s) for %s: %s — the backup is kept locally only",
                proc.returncode,
                path.name,
                tail,
            )
        else:
            log.info("backup hook done for %s", path.name)
