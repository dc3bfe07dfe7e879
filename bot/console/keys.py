"""The console's encryption key: TOTP secrets are stored encrypted, never in plaintext.

A TOTP secret must be readable to check a code, so it cannot be hashed like a password; it is
encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key that is not
in the database: `DIARYBOT_CONSOLE_KEY`, or a key file beside the database (created 0600 on first
use). A stolen database alone yields no second factor.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

ENV = "DIARYBOT_CONSOLE_KEY"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def for_database(cls, db_path: str | Path) -> SecretBox:
        env = os.environ.get(ENV, "").strip()
        if env:
            return cls(env.encode("ascii"))
        path = Path(f"{db_path}.console-key")
        if not path.exists():
            # O_EXCL: two processes starting at once never write two different keys.
            key = Fernet.generate_key()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as fp:
                    fp.write(key)
        return cls(path.read_bytes().strip())

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:  # the key file was replaced: the member must be re-invited
            raise RuntimeError("console key does not match the stored TOTP secrets") from exc
