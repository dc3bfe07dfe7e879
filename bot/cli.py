"""`diarybot` — the command line for the study team's server.

Bad arguments exit with status 2 and one line on stderr; nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bot.cliargs import NO_REASON_GIVEN, Parser, UsageError, hhmm, iso_date, lang
from bot.clock import SystemClock
from bot.config import Settings, load_settings
from bot.dataout import cli as dataout_cli
from bot.delivery import cli as delivery_cli
from bot.domain.study import (
    SHIPPED_PLACEHOLDER_PHONE,
    Study,
    StudyError,
    load_study,
)
from bot.escalation import cli as escalation_cli
from bot.escalation import permissions
from bot.followup import cli as followup_cli
from bot.ops import cli as ops_cli
from bot.ops import logs, watchdog
from bot.sandbox import cli as sandbox_cli
from bot.services.runtime import Runtime
from bot.web import cli as web_cli
from storage import audit, repo
from storage.db import Database, DatabaseTooNew, IntegrityError, MigrationNeeded
from storage.keys import AuditKeyError

ROLES = permissions.ROLES

TOKEN_HELP = """\
diarybot: no Telegram bot token configured.
  1. In Telegram, open @BotFather, send /newbot and follow the steps; it replies with a token.
  2. Put it in a file named .env next to where you run diarybot:
         TELEGRAM_BOT_TOKEN=123456789:AA...
     (or export TELEGRAM_BOT_TOKEN in the environment). Never commit this file.
"""


def build_parser() -> Parser:
    p = Parser(prog="diarybot", description="Telegram diary bot for study NCT06438809.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="run the bot (long polling)")
    run.add_argument(
        "--init",
        action="store_true",
        help="create the database if it does not exist (otherwise a missing file is an error)",
    )
    run.add_argument(
        "--health",
        metavar="ADDR",
        default=None,
        help="serve GET /healthz and /metrics on HOST:PORT, e.g. 127.0.0.1:9102"
        " (default: DIARYBOT_HEALTH, else off)",
    )
    sandbox_cli.add_parsers(sub)  # `sandbox` and `up`

    staff = sub.add_parser("staff", help="manage study staff")
    ssub = staff.add_subparsers(dest="staff_command", required=True, parser_class=Parser)
    add = ssub.add_parser(
        "add", help="add or update a staff member; --email also invites them to the web console"
    )
    add.add_argument("--telegram-id", type=int, help="their Telegram user id (if they use it)")
    add.add_argument("--email", help="console sign-in; prints a one-time invitation link")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--lang", type=lang, default="zh_Hans")
    ssub.add_parser("list", help="list staff")
    rm = ssub.add_parser("remove", help="remove a staff member (access ends at once)")
    rm.add_argument("--telegram-id", type=int, required=True)
    grp = ssub.add_parser("group", help="register the study-team group chat")
    grp.add_argument("--chat-id", type=int, required=True)

    enroll = sub.add_parser("enroll", help="enrol a subject; prints a one-time code and link")
    enroll.add_argument("--subject")
    enroll.add_argument("--injection-date", type=iso_date)
    enroll.add_argument("--lang", type=lang, default=None)
    enroll.add_argument("--timezone", default="Asia/Shanghai")
    enroll.add_argument("--prompt-time", type=hhmm, default=None)
    enroll.add_argument(
        "--channel", choices=("telegram", "web"), default="telegram", help="how the patient answers"
    )
    enroll.add_argument("--phone", help="web patients: mobile number, E.164 (+8613812345678)")
    enroll.add_argument("--birth-year", type=int, help="web patients: asked on a new device")
    enroll.add_argument("--from-csv", metavar="FILE", help="enrol every row of a CSV file")
    enroll.add_argument(
        "--reissue",
        metavar="SUBJECT",
        help="a new one-time code for an enrolled subject not linked to Telegram (old codes"
        " stop working)",
    )
    enroll.add_argument(
        "--reason",
        default=NO_REASON_GIVEN,
        help=f"--reissue: why, for the audit trail (default: {NO_REASON_GIVEN!r})",
    )
    enroll.add_argument("--json", action="store_true", help="print JSON")

    for extra in EXTRA_COMMANDS:
        extra(sub)
    return p


# Each feature adds subcommands: `def add(subparsers) -> None`, setting `func(args, rt)`.
EXTRA_COMMANDS: list[Callable[[Any], None]] = [
    escalation_cli.add,
    followup_cli.add,
    delivery_cli.add,
    dataout_cli.add,
    ops_cli.add,
    watchdog.add,
    web_cli.add,
]


# ------------------------------------------------------------------ commands
async def open_runtime(settings: Settings, study: Study) -> Runtime:
    db = await Database.open(settings.db_path)
    rt = Runtime(db=db, study=study, clock=SystemClock(), public_url=settings.public_url)
    rt.bot_username = await repo.meta_get(db.conn, "bot_username") or None
    return rt


async def _console_invite(args: argparse.Namespace, rt: Runtime, telegram_id: int | None) -> int:
    """Create or link the member's console account and print their one-time invitation."""
    from bot.console import accounts

    try:
        async with rt.db.transaction() as conn:
            invite = await accounts.create_account(
                rt,
                conn,
                email=args.email,
                name=args.name,
                role=args.role,
                lang=args.lang,
                telegram_id=telegram_id,
                by="cli",
            )
    except accounts.AccountError as exc:
        raise UsageError(f"--email refused: {exc.code.replace('_', ' ')}") from exc
    from bot.console.invites import email_invite, invite_url, public_base

    url = invite_url(public_base(), invite.token)
    print(f"console account {args.email} ({args.role}) for staff id {invite.staff_id}")
    if await email_invite(args.email, args.name, args.lang, url):
        print(f"one-time invitation emailed to {args.email} (valid 72 hours)")
    else:
        print(f"one-time invitation (valid 72 hours, shown once): {url}")
    return 0


async def cmd_staff(args: argparse.Namespace, rt: Runtime) -> int:
    now = rt.now()
    if args.staff_command == "add":
        email = getattr(args, "email", None)
        if args.telegram_id is None:
            if not email:
                raise UsageError("give --telegram-id, --email or both")
            return await _console_invite(args, rt, None)
        if args.telegram_id <= 0:
            raise UsageError("--telegram-id must be a Telegram user id (a positive number)")
        async with rt.db.transaction() as conn:
            before = await repo.staff_record(conn, args.telegram_id)
            await repo.save_staff(conn, args.telegram_id, args.role, args.name, args.lang, now)
            await audit.record(
                conn,
                now,
                "cli",
                "staff_add",
                entity=f"staff:{args.telegram_id}",
                old=before,
                new={"role": args.role, "name": args.name, "lang": args.lang},
            )
        print(f"staff {args.telegram_id} ({args.role}, {args.lang}) saved")
        if email:
            return await _console_invite(args, rt, args.telegram_id)
        return 0
    if args.staff_command == "list":
        for s in await repo.all_staff(rt.db.conn):
            state = "active" if s.active else "removed"
            print(f"{s.telegram_id}\t{s.role}\t{s.lang}\t{state}\t{s.name}")
        group = await repo.meta_get(rt.db.conn, "staff_group")
        if group:
            print(f"group chat: {group}")
        return 0
    if args.staff_command == "remove":
        async with rt.db.transaction() as conn:
            if not await repo.deactivate_staff(conn, args.telegram_id):
                raise UsageError(f"no active staff member {args.telegram_id}")
            await audit.record(
                conn, now, "cli", "staff_remove", entity=f"staff:{args.telegram_id}", new="removed"
            )
        print(f"staff {args.telegram_id} removed")
        return 0
    if args.staff_command == "group":
        if args.chat_id >= 0:
            raise UsageError("a group chat id is negative (e.g. -1001234567890)")
        async with rt.db.transaction() as conn:
            old = await repo.meta_get(conn, "staff_group")
            await repo.meta_set(conn, "staff_group", str(args.chat_id))
            await audit.record(conn, now, "cli", "staff_group", old=old, new=str(args.chat_id))
        print(f"study-team group chat set to {args.chat_id}")
        return 0
    raise UsageError("unknown staff command")


async def cmd_enroll(args: argparse.Namespace, rt: Runtime) -> int:
    from bot.services.enrolment import EnrolError, enroll, reissue

    if args.reissue:
        try:
            result = await reissue(rt, args.reissue, reason=args.reason)
        except EnrolError as exc:
            raise UsageError(str(exc)) from None
        _print_code(args, rt, result.subject, result.code, result.link)
        return 0
    if args.from_csv:
        from bot.services.bulk import enroll_csv

        try:
            return await enroll_csv(rt, args.from_csv, as_json=args.json)
        except EnrolError as exc:
            raise UsageError(str(exc)) from None
    if not args.subject or not args.injection_date:
        raise UsageError("--subject and --injection-date are required (or --from-csv FILE)")
    try:
        result = await enroll(
            rt,
            args.subject,
            args.injection_date,
            args.lang,
            args.timezone,
            args.prompt_time or rt.study.default_prompt_time,
            channel=args.channel,
            phone=args.phone,
            birth_year=args.birth_year,
        )
    except EnrolError as exc:
        raise UsageError(str(exc)) from None
    if result.channel == "web":
        from bot.web.cli import print_link

        print_link(result.subject, result.link or "", as_json=args.json)
        return 0
    _print_code(args, rt, result.subject, result.code, result.link)
    return 0


def _print_code(
    args: argparse.Namespace, rt: Runtime, subject: str, code: str, link: str | None
) -> None:
    if args.json:
        print(json.dumps({"subject": subject, "code": code, "link": link}))
        return
    print(f"subject: {subject}")
    print(f"code:    {code}   (one use, valid {rt.study.code_valid_hours // 24} days)")
    if link:
        print(f"link:    {link}")
    else:
        print("link:    not known yet: the bot learns its username on the first `diarybot run`")


async def cmd_run(args: argparse.Namespace, settings: Settings, study: Study) -> int:
    if not settings.token:
        print(TOKEN_HELP, file=sys.stderr, end="")
        return 2
    web_config = None
    if settings.web:
        from bot.web.server import WebConfig, parse_bind

        try:
            parse_bind(settings.web)
            web_config = WebConfig.from_env()  # DIARYBOT_TRUSTED_PROXIES
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    from bot.dataout.backup import BackupError
    from bot.ops import lock, service
    from bot.ops.backups import BackupSchedule, PolicyError, policy_from_env
    from bot.ops.cli import backup_folder
    from bot.ops.upgrade import backup_first

    health = getattr(args, "health", None) or service.health_address()  # `up` has no --health
    if health:
        from bot.ops.health_http import parse_address

        try:
            parse_address(health)
        except ValueError as exc:
            raise UsageError(f"--health / DIARYBOT_HEALTH: {exc}") from None
    if study.contact_phone == SHIPPED_PLACEHOLDER_PHONE:  # patients must get a staffed number
        raise UsageError(
            f"study.contact_phone in {study.source} is still the shipped placeholder; "
            "set the site's staffed study phone before running the real bot."
        )
    from bot.channels.sms import SmsConfigurationError, provider_from_env

    try:  # a wrong SMS setting stops here, in one line, before anything starts
        provider_from_env(None, study.sms)
    except SmsConfigurationError as exc:
        raise UsageError(str(exc)) from None
    if not settings.db_path.exists() and not getattr(args, "init", False):
        # Never a silent new empty database (a wrong path, a deleted file): say so.
        print(
            f"diarybot: error: no database at {settings.db_path}; check DIARYBOT_DB, or start"
            " with `diarybot run --init` to create a new one",
            file=sys.stderr,
        )
        return 1
    try:
        policy = policy_from_env(settings.db_path)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    try:
        held = lock.acquire(settings.db_path)  # one bot per database
    except lock.Locked as exc:
        print(f"diarybot: error: {exc}", file=sys.stderr)
        return 1
    with held:
        # Only now: bot.app imports every feature (the charts: matplotlib), and the checks above
        # must answer quickly with one line (matplotlib's first import logs its font cache).
        from bot.app import DiaryBot

        clock = SystemClock()
        try:
            bot = await DiaryBot.create(
                db_path=settings.db_path,
                study=study,
                clock=clock,
                token=settings.token,
                base_url=settings.base_url,
                base_file_url=settings.base_file_url,
                proxy=settings.proxy,
                migrate=True,
                before_migrate=backup_first(backup_folder(settings), clock),
            )
        except StudyError as exc:  # a study change that removes used option codes
            raise UsageError(f"study definition: {exc}") from None
        except BackupError as exc:
            print(f"diarybot: migration not run: the backup failed: {exc}", file=sys.stderr)
            return 1
        schedule = bot.hooks.backups
        assert isinstance(schedule, BackupSchedule)
        schedule.configure(policy)
        bot.rt.public_url = settings.public_url
        web = None
        if settings.web:
            from bot.web.app import WebDiary

            web = WebDiary(bot.rt, bot.diary, settings.web, web_config)
        try:
            ops = await service.start_ops(bot, health=health, heartbeat=service.heartbeat_url())
        except BaseException:
            await bot.rt.db.close()
            raise
        print(
            f"diarybot: running the real bot (database {settings.db_path}); Ctrl-C stops it.",
            flush=True,
        )
        try:
            return await _serve(bot, web, settings.public_url)
        finally:
            await ops.stop()


async def _serve(bot: Any, web: Any, public_url: str | None) -> int:
    """Start (retrying while Telegram is unreachable), then run until a signal (0) or until a
    task the bot depends on dies (1: the service manager restarts it). A rejected token: 2.
    `web`: the web diary (bot/web), started once the bot runs, stopped before it."""
    from telegram.error import InvalidToken

    from bot.app import describe_error

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.create_task(stop.wait())
    starting = asyncio.create_task(bot.start())
    web_started = False
    try:
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting  # start() stops the bot (database closed) when cancelled
            return 0
        try:
            starting.result()
        except InvalidToken:
            print("diarybot: error: Telegram rejected the bot token (check .env)", file=sys.stderr)
            return 2
        except Exception as exc:  # start() has stopped the bot and closed the database
            print(f"diarybot: error: start-up failed: {describe_error(exc)}", file=sys.stderr)
            return 1
        if web is not None:
            await web.start()
            web_started = True
            print(f"diarybot: web diary on http://{web.bound} (public {public_url})")
        failure = asyncio.create_task(bot.failed())
        await asyncio.wait({failure, stopped}, return_when=asyncio.FIRST_COMPLETED)
        failure.cancel()
        if failure.done() and not failure.cancelled():
            print(f"diarybot: error: {failure.result()}", file=sys.stderr)
            return 1
        return 0
    finally:
        stopped.cancel()
        if web_started:
            await web.stop()
        if starting.done() and not starting.cancelled() and starting.exception() is None:
            await bot.stop()


Handler = Callable[[argparse.Namespace, Runtime], Awaitable[int]]
HANDLERS: dict[str, Handler] = {"staff": cmd_staff, "enroll": cmd_enroll}


async def _main(args: argparse.Namespace) -> int:
    try:
        return await _dispatch(args)
    except (MigrationNeeded, DatabaseTooNew) as exc:  # nothing was written
        raise UsageError(str(exc)) from None


async def _dispatch(args: argparse.Namespace) -> int:
    settings = load_settings()
    logs.setup(os.environ.get("DIARYBOT_LOG_FORMAT"))  # again: .env may have set the format
    try:
        study = load_study(settings.study_path)
    except StudyError as exc:
        raise UsageError(f"study definition: {exc}") from None
    if args.command == "run":
        try:
            return await cmd_run(args, settings, study)
        except (IntegrityError, AuditKeyError) as exc:  # say it, don't trace
            print(f"diarybot: {exc}", file=sys.stderr)
            return 1
    if args.command == "sandbox":
        return await sandbox_cli.cmd_sandbox(args, settings, study)
    if args.command == "up":
        return await sandbox_cli.cmd_up(args, settings, study, run_bot=cmd_run)
    standalone = getattr(args, "standalone", None)  # manages the database file itself
    if standalone is not None:
        return int(await standalone(args, settings, study))
    func = getattr(args, "func", None) or HANDLERS[args.command]
    existed = settings.db_path.exists()
    try:
        rt = await open_runtime(settings, study)
    except (IntegrityError, AuditKeyError) as exc:
        print(f"diarybot: {exc}", file=sys.stderr)
        return 1
    refused = False
    try:
        return await func(args, rt)
    except UsageError:
        refused = True
        raise
    finally:
        await rt.db.close()
        if refused and not existed:
            _remove_database(settings.db_path)  # a refused command leaves no file behind


def _remove_database(path: Path) -> None:
    """The database file this command created (empty but for its schema) and its WAL files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    # Health data: every file and folder this process creates is its user's only (0600/0700).
    os.umask(0o077)
    # One line per event, DIARYBOT_LOG_FORMAT=json for JSON; tokens and codes redacted.
    logs.setup(os.environ.get("DIARYBOT_LOG_FORMAT"))
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except UsageError as exc:
        print(f"diarybot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
