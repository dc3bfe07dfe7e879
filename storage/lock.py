"""One bot per database: an OS file lock beside the database that dies with its process.

Two bots polling one database would answer every patient twice and race each other's writes
(and the sandbox deletes its file on start). `BotLock.acquire` takes an exclusive `fcntl.flock`
on `<database>.lock` and writes its pid there; a second `diarybot run` or `sandbox` on the
same file fails at once, naming the running process. The kernel drops the lock when the
process ends, however it ends (`kill -9` included): a stale lock file is harmless.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class AlreadyRunning(RuntimeError):
    """Another process holds the database's bot lock."""

    def __init__(self, db_path: Path, pid: str) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"another bot ({who}) is already running on {db_path}; stop it first")


class BotLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db_path: str | Path) -> BotLock:
        db_path = Path(db_path)
        path = Path(f"{db_path}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise AlreadyRunning(db_path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the lock
