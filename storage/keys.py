"""The server secret that is not in the database: it signs the audit trail and hides codes.

Where it comes from, first found wins:
1. `DIARYBOT_AUDIT_KEY` in the environment (or `.env`): at least 32 characters;
2. the key file beside the database, `<database>.key` (mode 0600);
3. neither: a new random key is written to that file (0600, never overwritten) and printed
   once on stderr, with instructions to keep a copy off the server. It is never logged: when
   stderr is not a terminal (a journal, a cron mail) the notice names the file instead.

Someone who can change the database file but cannot read this key cannot recompute an audit
entry's HMAC (storage/audit.py) nor test guessed enrolment codes against their stored HMACs
(bot/services/codes.py). Each use derives its own sub-key, so the two cannot be confused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
import weakref
from pathlib import Path
from typing import Any

ENV = "DIARYBOT_AUDIT_KEY"
MIN_LENGTH = 32
KEY_SUFFIX = ".key"

NOTICE = """\
diarybot: a new audit key was generated for {db} and saved in {path} (readable by this user only).
  Keep a copy OFF this server now (the sponsor's password manager, or a sealed envelope in the
  trial master file); it is not shown again:

      {key}

  Without it nobody can prove that the audit trail was not rewritten. To use it from the
  environment instead of the file, set DIARYBOT_AUDIT_KEY to this value (see docs/deploy.md).
"""
# Not at a terminal (a service manager's journal, a cron mail): the key itself stays out of it.
NOTICE_NO_TERMINAL = """\
diarybot: a new audit key was generated for {db} and saved in {path} (readable by this user only).
  Copy that file's one line OFF this server now (the sponsor's password manager, or a sealed
  envelope in the trial master file). It is not shown here, because this output is not a
  terminal and may be logged. Without it nobody can prove that the audit trail was not
  rewritten (see docs/deploy.md).
"""


def _terminal() -> bool:
    return sys.stderr.isatty()


class AuditKeyError(RuntimeError):
    """The configured key is unusable (too short); one line for the command line."""


def key_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}{KEY_SUFFIX}")


def load(db_path: str | Path) -> bytes:
    """The study's secret for this database (see the module docstring for where it comes from)."""
    value = os.environ.get(ENV, "").strip()
    if value:
        if len(value) < MIN_LENGTH:
            raise AuditKeyError(f"{ENV} is too short: use at least {MIN_LENGTH} characters")
        return value.encode("utf-8")
    path = key_path(db_path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _create(db_path, path)
    if len(text) < MIN_LENGTH:
        raise AuditKeyError(f"{path} holds no usable key (at least {MIN_LENGTH} characters)")
    return text.encode("utf-8")


def _create(db_path: str | Path, path: Path) -> bytes:
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago: use theirs
        return load(db_path)
    with os.fdopen(fd, "w", encoding="ascii") as fp:
        fp.write(key + "\n")
        fp.flush()
        os.fsync(fp.fileno())
    notice = NOTICE if _terminal() else NOTICE_NO_TERMINAL
    print(notice.format(db=db_path, path=path, key=key), file=sys.stderr, flush=True)
    return key.encode("utf-8")


_by_conn: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def register(conn: Any, key: bytes) -> None:
    """Remember the key for a connection (Database.open does it; so does a backup's check)."""
    _by_conn[conn] = key


def for_conn(conn: Any) -> bytes:
    """The key registered for this connection; a connection opened without one is a bug."""
    try:
        return _by_conn[conn]
    except KeyError:
        raise AuditKeyError("this database connection was opened without the audit key") from None


def subkey(key: bytes, purpose: str) -> bytes:
    """A key for one purpose ("audit", "codes"), so one secret serves both independently."""
    return hmac.new(key, purpose.encode("ascii"), hashlib.sha256).digest()
