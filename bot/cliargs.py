"""What every `diarybot` subcommand shares: the parser class, `UsageError`, argument types.

Below `bot.cli` and the features' CLIs (`bot/<feature>/cli.py`), so those import from here,
not from `bot.cli` (which imports them to build the parser).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, time
from typing import NoReturn

from bot.domain.study import parse_hhmm
from bot.i18n import parse_lang


class UsageError(Exception):
    """A bad argument: one line, exit status 2."""


# `--reason` of a reissued code or link, when the command line gives none (the console always
# asks for one); the audit entry then says so instead of inventing a reason.
NO_REASON_GIVEN = "not given (command line)"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


# ------------------------------------------------------------------ argument types
def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad date {text!r}, expected YYYY-MM-DD") from None


def hhmm(text: str) -> time:
    try:
        return parse_hhmm(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad time {text!r}, expected HH:MM (24 h)") from None


def lang(text: str) -> str:
    value = parse_lang(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"unknown language {text!r}, expected zh or en")
    return value
