"""Callback data: short ASCII (Telegram allows 64 bytes), never translated text.

Format `<area>:<verb>:<args…>`. Parsing is strict; anything else is treated as forged.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BYTES = 64


@dataclass(frozen=True)
class Callback:
    area: str
    verb: str
    args: tuple[str, ...]

    def int_arg(self, i: int) -> int | None:
        try:
            return int(self.args[i])
        except (IndexError, ValueError):
            return None


def make(area: str, verb: str, *args: object) -> str:
    data = ":".join([area, verb, *(str(a) for a in args)])
    if len(data.encode()) > MAX_BYTES:
        raise ValueError(f"callback data too long: {data!r}")
    return data


def parse(data: str | None) -> Callback | None:
    if not data or len(data.encode()) > MAX_BYTES or not data.isascii():
        return None
    parts = data.split(":")
    if len(parts) < 2 or not all(p.replace("_", "").replace("-", "").isalnum() for p in parts):
        return None
    return Callback(parts[0], parts[1], tuple(parts[2:]))
