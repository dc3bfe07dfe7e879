"""One-time enrolment codes: random, unambiguous, stored only as a keyed hash.

A code has about 50 bits (10 characters of 31): a plain SHA-256 of it could be brute-forced
from a stolen database in hours on a GPU. The stored value is an HMAC keyed by the server
secret that is not in the database (storage/keys.py), so the stolen file alone is useless;
guessing through the bot is limited to 5 wrong codes per chat per 15 minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from storage import keys

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


def code_hash(code: str, key: bytes) -> str:
    """HMAC-SHA256 of the normalized code with the "codes" sub-key of the server secret."""
    data = normalize(code).encode("ascii", "replace")
    return hmac.new(keys.subkey(key, "codes"), data, hashlib.sha256).hexdigest()


def legacy_hash(code: str) -> str:
    """How codes issued before migration 0010 were stored (accepted until they expire)."""
    return hashlib.sha256(normalize(code).encode("ascii", "replace")).hexdigest()
