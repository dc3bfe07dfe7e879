"""Command-line subcommands of this feature."""

from __future__ import annotations

from typing import Any


def add(sub: Any) -> None:
    """Add subcommands to the `diarybot` parser; each sets `func(args, rt) -> int`."""
    return None
