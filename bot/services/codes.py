"""One-time enrolment codes: random, unambiguous, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

# No 0/O, 1/I/L: a patient copying a code from paper cannot confuse them.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 10


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize(text: str) -> str:
    return "".join(ch for ch in text.upper() if not ch.isspace() and ch != "-")


def looks_like_code(text: str) -> bool:
    code = normalize(text)
    return 8 <= len(code) <= 16 and code.isascii() and code.isalnum()


def code_hash(code: str) -> str:
    return hashlib.sha256(normalize(code).encode("ascii", "replace")).hexdigest()
