"""`diarybot sandbox` (the local sandbox) and `diarybot up` (sandbox or real bot, by token).

`make run` calls `diarybot up`: with a Telegram token it runs the real bot, without one the
sandbox, and the first line it prints says which. `diarybot run` itself still refuses to start
without a token (exit 2, with the @BotFather steps), so a server that lost its token never
quietly turns into a demo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.domain.study import Study
from storage import keys

DEFAULT_PORT = 8080
DEFAULT_DB = "sandbox-data/sandbox.sqlite3"
SIGNALS = (signal.SIGINT, signal.SIGTERM)

# `diarybot run` (bot.cli.cmd_run), passed in by bot.cli: this module is below it.
RunBot = Callable[[argparse.Namespace, Settings, Study], Awaitable[int]]


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"bad port {text!r}: 1-65535")
    return value


def _sandbox_options(p: Any) -> None:
    p.add_argument("--port", type=port, default=DEFAULT_PORT, help="web page port (127.0.0.1)")
    p.add_argument("--db", default=DEFAULT_DB, help="sandbox SQLite file (recreated each start)")


def add_parsers(sub: Any) -> None:
    sandbox = sub.add_parser(
        "sandbox", help="the bot in a browser with demo data and time travel (no Telegram)"
    )
    _sandbox_options(sandbox)
    up = sub.add_parser(
        "up", help="the real bot if TELEGRAM_BOT_TOKEN is set, otherwise the sandbox"
    )
    _sandbox_options(up)


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


async def cmd_up(
    args: argparse.Namespace, settings: Settings, study: Study, *, run_bot: RunBot
) -> int:
    if settings.token:
        print("diarybot: TELEGRAM_BOT_TOKEN is set: starting the real bot.", flush=True)
        args.init = True  # `make run`: the first run creates the database
        return await run_bot(args, settings, study)
    print(
        "diarybot: no TELEGRAM_BOT_TOKEN configured: starting the local sandbox "
        f"(no Telegram needed) on http://127.0.0.1:{args.port}/",
        flush=True,
    )
    return await cmd_sandbox(args, settings, study)


# The sandbox's database is a throwaway demo: its audit trail is signed with this fixed key
# (unless DIARYBOT_AUDIT_KEY is set), so a newcomer's first `make run` is not asked to keep a
# study's audit key safe. A real study's key is made per database (storage/keys.py).
SANDBOX_AUDIT_KEY = "sandbox-demo-audit-key-not-for-study-data-0000"


async def cmd_sandbox(args: argparse.Namespace, settings: Settings, study: Study) -> int:
    os.environ.setdefault(keys.ENV, SANDBOX_AUDIT_KEY)
    db_path = Path(args.db)
    if _same_file(db_path, settings.db_path):
        print(
            f"diarybot: error: {db_path} is the study database (DIARYBOT_DB); "
            "the sandbox needs its own file",
            file=sys.stderr,
        )
        return 2
    # Ctrl-C (or a service manager's SIGTERM) stops cleanly at any point, seeding included.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _serve(db_path, args.port, study, stop)
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)


async def _serve(db_path: Path, port: int, study: Study, stop: asyncio.Event) -> int:
    from bot.ops.lock import Locked
    from bot.sandbox import demo, web
    from bot.sandbox.world import Sandbox, SandboxError

    today = demo.default_today(study)
    sb = Sandbox(db_path, study, demo.seed_start(study, today), page_port=port)
    started = time.monotonic()
    print(f"diarybot: seeding the demo study in {db_path} …", flush=True)
    stopped = asyncio.create_task(stop.wait())
    runner = None
    try:
        try:
            await sb.start()
        except SandboxError as exc:
            print(f"diarybot: error: {exc}", file=sys.stderr)
            return 2
        except Locked as exc:
            print(f"diarybot: error: {exc}", file=sys.stderr)
            return 1
        try:
            runner = await web.serve(sb, port)
        except OSError as exc:
            print(f"diarybot: error: port {port} is not free ({exc.strerror})", file=sys.stderr)
            return 1
        seeding = asyncio.create_task(demo.seed(sb, today))
        await asyncio.wait({seeding, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not seeding.done():
            seeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await seeding
            return 0
        seeding.result()
        sb.ready = True
        print(
            f"diarybot: sandbox ready in {time.monotonic() - started:.1f} s: "
            f"http://127.0.0.1:{port}/ (every screen: /screens); Ctrl-C stops it.",
            flush=True,
        )
        await stopped
        return 0
    finally:
        stopped.cancel()
        if runner is not None:
            await runner.cleanup()
        await sb.stop()
