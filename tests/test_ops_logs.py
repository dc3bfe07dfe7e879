"""Logs: one line per event (text or JSON); never a token, an enrolment code or an answer."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.ops.logs import CODE_MARK, TOKEN_MARK, RedactingFilter, redact, setup
from tests.diary_helpers import QUIET, answer_until_review
from tests.harness import Harness

TOKEN = "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The service's own handler (as `diarybot run` sets it up), writing into a buffer."""
    buf = io.StringIO()
    handler = setup("text", stream=buf)
    assert handler is not None
    try:
        yield buf
    finally:
        logging.getLogger().removeHandler(handler)


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    rec = logging.LogRecord("bot.test", logging.ERROR, __file__, 1, msg, args, None)
    if exc is not None:
        rec.exc_info = (type(exc), exc, exc.__traceback__)
    return rec


def test_redact_token_code_and_url_password() -> None:
    assert redact(f"POST https://api.telegram.org/bot{TOKEN}/getMe") == (
        f"POST https://api.telegram.org/bot{TOKEN_MARK}/getMe"
    )
    assert redact("text '/start K7PQ2MZXRW' from 501") == f"text '/start {CODE_MARK}' from 501"
    assert redact("link https://t.me/diary_bot?start=K7PQ2MZXRW") == (
        f"link https://t.me/diary_bot?start={CODE_MARK}"
    )
    assert (
        redact("smtp://study%40h.cn:s3cr3t@mail.h.cn:587")
        == "smtp://study%40h.cn:***@mail.h.cn:587"
    )
    assert redact("nothing secret: 12:30, 2026-12-01") == "nothing secret: 12:30, 2026-12-01"


def test_filter_redacts_arguments_and_tracebacks() -> None:
    try:
        raise RuntimeError(f"Telegram refused https://api.telegram.org/bot{TOKEN}/sendMessage")
    except RuntimeError as exc:
        rec = record("request for %s failed", f"bot{TOKEN}", exc=exc)
    assert RedactingFilter().filter(rec)
    text = logging.Formatter().format(rec)
    assert TOKEN not in text and TOKEN_MARK in text
    assert "Traceback" in text  # the traceback is kept, redacted


def test_text_and_json_lines_are_one_line_per_event() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError as exc:
        rec = record("it broke at %s", "step 2", exc=exc)
    for fmt in ("text", "json"):
        buf = io.StringIO()
        handler = setup(fmt, stream=buf)
        assert handler is not None
        try:
            handler.handle(rec)
        finally:
            logging.getLogger().removeHandler(handler)
        out = buf.getvalue()
        assert out.count("\n") == 1, out
        if fmt == "json":
            data = json.loads(out)
            assert data["level"] == "ERROR" and data["logger"] == "bot.test"
            assert data["msg"] == "it broke at step 2" and "ValueError" in data["exc"]
        else:
            assert "it broke at step 2 | Traceback" in out and "ValueError: bad | value" in out


async def test_a_whole_diary_logs_no_code_no_answer_no_token(
    harness: Harness, captured: io.StringIO
) -> None:
    h = harness
    secret = "blood in the toilet since Tuesday night"
    code = await h.enroll("RP-007", lang="en")
    p = h.player(507, language_code="en")
    await p.send(f"/start {code}")
    await p.send("/start WRONGCODE99")  # a wrong code is not logged either
    await h.advance(hours=1)  # 20:00 in Shanghai: the diary opens
    await p.tap("Start")
    await answer_until_review(p, {**QUIET, "OTHER": "Y", "OTHER_TEXT": secret})
    await p.tap("Submit")
    logging.getLogger("telegram.test").error("token in a message: %s", TOKEN)
    out = captured.getvalue()
    assert out  # the bot did log (the token line at least)
    assert code not in out and "WRONGCODE99" not in out
    assert secret not in out and "Tuesday" not in out
    assert TOKEN not in out and "123456:TEST-TOKEN" not in out
