"""`diarybot audit verify` and `diarybot audit show`: the audit trail, read from the server.

`verify` walks the hash chain, checks every entry's signature (HMAC with the audit key) and
names the first entry that was edited, deleted, reordered, forged or back-dated (exit status 1),
or prints OK with the chain's head. `--expect-head N:HASH` (a head noted outside the server: the
daily digest, a backup, an export) also fails unless the chain contains that entry with that
hash, which is what reveals a trail whose last entries were cut off and its head repointed.
`show` lists entries with their time in UTC and in local time, oldest first.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.cliargs import UsageError
from bot.clock import from_iso
from bot.services.runtime import Runtime
from storage import audit, repo


def expected_head(text: str) -> tuple[int, str]:
    try:
        return audit.parse_expect(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad head {text!r}, expected N:HASH (the entry number and its 64-digit hash)"
        ) from None


async def cmd_verify(args: argparse.Namespace, rt: Runtime) -> int:
    expects: list[tuple[int, str]] = args.expect_head or []
    result = await audit.verify(rt.db.conn)
    for expect in expects:
        if not result.ok:
            break
        result = await audit.verify(rt.db.conn, expect=expect)
    if result.ok:
        head = await audit.head(rt.db.conn)
        print(f"audit trail OK: {result.checked} entries, chain intact, signatures valid")
        if result.unsigned:
            print(
                f"entries 1 to {result.unsigned} predate signatures; entry {result.unsigned + 1}"
                " (audit_key) vouches for them: check they predate the upgrade to signatures"
            )
        for expect_id, expect_hash in expects:
            print(f"contains the expected head: entry {expect_id} {expect_hash}")
        if head:
            number, _, digest = head.partition(" ")
            print(f"head: entry {number} {digest}")
        return 0
    where = f"entry {result.first_bad_id}" if result.first_bad_id else "the end of the chain"
    print(f"audit trail BROKEN at {where}: {result.problem}")
    print(f"{result.checked} entries before it are intact")
    return 1


def _local(at: str, tz: str) -> str:
    when = from_iso(at) if at.endswith("Z") else datetime.fromisoformat(at)
    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _value(text: str | None) -> str:
    return "-" if text is None else text


async def cmd_show(args: argparse.Namespace, rt: Runtime) -> int:
    tz = rt.study.timezone
    if args.subject:
        subject_tz = await repo.timezone_of_subject(rt.db.conn, args.subject)
        if subject_tz is None:
            raise UsageError(f"no subject {args.subject!r}")
        tz = subject_tz
    rows = await audit.entries(rt.db.conn, args.subject or None)
    if args.limit:
        rows = rows[-args.limit :]
    for r in rows:
        line = f"#{r['id']}  {r['at'][:19]}Z  ({_local(r['at'], tz)})"
        if r["subject"]:
            line += f"  [{r['subject']}]"
        line += f"  {r['actor']}  {r['action']}"
        if r["entity"]:
            line += f"  {r['entity']}"
        if r["old_value"] is not None or r["new_value"] is not None:
            line += f"  {_value(r['old_value'])} -> {_value(r['new_value'])}"
        if r["reason"]:
            line += f"  reason: {r['reason']}"
        print(line)
    print(f"{len(rows)} entries (local time: {tz})")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="verify or show the tamper-evident audit trail")
    asub = p.add_subparsers(dest="audit_command", required=True, parser_class=type(p))
    v = asub.add_parser("verify", help="check the hash chain; exit 1 at the first bad entry")
    v.add_argument(
        "--expect-head",
        metavar="N:HASH",
        type=expected_head,
        action="append",
        help="a head noted outside the server (digest, backup, export): the chain must contain"
        " entry N with this hash (repeatable)",
    )
    v.set_defaults(func=cmd_verify)
    s = asub.add_parser("show", help="list audit entries (UTC and local time)")
    s.add_argument("--subject", help="only entries about this subject, in their time zone")
    s.add_argument("--limit", type=int, default=0, help="only the last N entries")
    s.set_defaults(func=cmd_show)
