"""Logging for a service: one line per event, optionally JSON, secrets never written.

`DIARYBOT_LOG_FORMAT=json` gives one JSON object a line (for journald/Loki/ELK); the default is
one plain text line. A traceback stays on its event's line (its lines joined with " | "), so
`grep` and log shippers see one event as one line.

`RedactingFilter` rewrites every record before any handler formats it: a Telegram bot token
(`123456789:AA…`, also inside a Bot API URL), an enrolment code after `/start` or `?start=`,
and credentials in a URL (`smtp://user:password@host`) become placeholders. Patients' answers
are never passed to a logger in the first place (tests/test_ops_logs.py checks a full diary).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

TOKEN = re.compile(r"(?<!\d)\d{5,12}:[A-Za-z0-9_-]{30,}")
START_CODE = re.compile(r"(/start(?:@\w+)?\s+|[?&]start=)[A-Za-z0-9_-]+")
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@")

TOKEN_MARK = "<bot-token>"
CODE_MARK = "<code>"


def redact(text: str) -> str:
    text = TOKEN.sub(TOKEN_MARK, text)
    text = START_CODE.sub(lambda m: m.group(1) + CODE_MARK, text)
    return URL_PASSWORD.sub(r"\1:***@", text)


class RedactingFilter(logging.Filter):
    """Replaces secrets in the message, its arguments and its traceback (see module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what we have, redacted
            message = f"{record.msg} {record.args}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class OneLineFormatter(logging.Formatter):
    """`2026-11-30 11:00:00,123 INFO bot.app: message | Traceback … | ValueError: …`"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return " | ".join(line for line in super().format(record).splitlines() if line.strip())


class JsonFormatter(logging.Formatter):
    """`{"ts": "…Z", "level": "INFO", "logger": "bot.app", "msg": "…", "exc": "…"}`"""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def setup(
    fmt: str | None = None, level: int = logging.INFO, stream: TextIO | None = None
) -> logging.Handler | None:
    """The root logger writes to `stream` (stderr) in `fmt` ("text" or "json"), redacted.

    Like `logging.basicConfig`, it adds no handler when the root logger already has one that
    is not ours (pytest's capture, an embedding program), unless `stream` is given.
    """
    root = logging.getLogger()
    # httpx logs every request URL, and the URL contains the bot token: keep it quiet anyway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for old in list(root.handlers):
        if getattr(old, "_diarybot", False):
            root.removeHandler(old)
    if root.handlers and stream is None:
        return None
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if (fmt or "").lower() == "json" else OneLineFormatter())
    handler._diarybot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return handler
