"""One bot per database: an advisory lock on `<db>.lock`, held by `diarybot run`.

`flock` locks belong to an open file, so a second holder is refused even in the same process,
and the lock goes away with the process however it ends (crash, kill -9): no stale lock files
to clean up by hand. Commands that must not run beside the bot (`diarybot restore`) ask
`is_locked` first. The holder writes its pid into the file, so a refused second bot (`diarybot
run` or `sandbox`, issue 11) can say which process holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class Locked(RuntimeError):
    """Another process holds the database's lock (the bot is running)."""

    def __init__(self, message: str, pid: str = "") -> None:
        super().__init__(message)
        self.pid = pid


def lock_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}.lock")


class DatabaseLock:
    """The held lock; `release()` (or process exit) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(db_path: str | Path) -> DatabaseLock:
    """Take the lock or raise `Locked` at once (never waits)."""
    path = lock_path(db_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        who = f"pid {pid}" if pid.isdigit() else "another process"
        raise Locked(f"{db_path} is in use by a running bot ({who}, lock {path})", pid) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return DatabaseLock(path, fd)


def is_locked(db_path: str | Path) -> bool:
    """Whether a running bot holds the database's lock (checks without keeping it)."""
    if not lock_path(db_path).exists():
        return False
    try:
        acquire(db_path).release()
    except Locked:
        return True
    return False
