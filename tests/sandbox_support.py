"""Shared pieces of the sandbox tests: a started (unseeded) sandbox and what to look for."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from bot.domain.study import SHIPPED_PLACEHOLDER_PHONE, Study, load_study
from bot.localapi import SentMessage
from bot.sandbox.world import Sandbox

# 2026-11-30 19:00 in Shanghai: an hour before the default 20:00 prompt.
T0 = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)


async def started(
    path: Path, study: Study, start: datetime = T0, *, page_port: int | None = None
) -> AsyncIterator[Sandbox]:
    sb = Sandbox(path, study, start, page_port=page_port)
    await sb.start()
    sb.ready = True
    try:
        yield sb
    finally:
        await sb.stop()


def texts(sb: Sandbox, chat_id: int) -> list[str]:
    return [m.text or "" for m in sb.api.messages(chat_id)]


def find(sb: Sandbox, chat_id: int, needle: str) -> SentMessage:
    for message in reversed(sb.api.messages(chat_id)):
        if needle in (message.text or ""):
            return message
    raise AssertionError(f"no message with {needle!r} in chat {chat_id}: {texts(sb, chat_id)}")


# ------------------------------------------------------------------ the command line
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_study_file(folder: Path) -> Path:
    """The packaged study with a site's own contact phone: what `diarybot run` needs."""
    path = folder / "site-study.toml"
    path.write_text(
        Path(load_study().source)
        .read_text(encoding="utf-8")
        .replace(SHIPPED_PLACEHOLDER_PHONE, "+86 21 5555 0100"),
        encoding="utf-8",
    )
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a `diarybot` subprocess: no token unless given, quiet logging."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DIARYBOT_"))}
    env["PTB_TIMEDELTA"] = "true"
    env.update(extra)
    return env


def launch(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`python -m bot <args>` in `cwd` (no stray .env), output as text lines."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    """Lines of stdout up to and including the one containing `needle` (fails on timeout)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if needle in line:
            return lines
    stderr = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
    raise AssertionError(f"no {needle!r} on stdout within {timeout}s: {lines}\n{stderr[-3000:]}")


def stop(proc: subprocess.Popen[str], timeout: float = 15) -> int:
    """SIGTERM, as Ctrl-C or a service manager would; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
