"""`diarybot entry correct`: the site corrects a submitted answer, with a reason.

    diarybot entry correct --as 1001 --subject RP-001 --day 3 --item PAIN --value 5 --reason "..."

`--as` names the staff member who makes the correction (a coordinator or investigator, by the
id `diarybot staff list` shows): the audit entry is theirs, as if made in the console. The
answers table then holds the corrected value; the audit trail keeps the original, who changed
it, when and why. Refusals exit with status 2 and change nothing. (A correction signed with a
password is made in the web console.)
"""

from __future__ import annotations

import argparse
from typing import Any

from bot.cliargs import UsageError
from bot.escalation import permissions
from bot.escalation.corrections import CorrectionError, correct_entry
from bot.services.runtime import Runtime
from storage import repo


def add(sub: Any) -> None:
    """Add subcommands to the `diarybot` parser; each sets `func(args, rt) -> int`."""
    entry = sub.add_parser("entry", help="correct a submitted diary answer (audited)")
    esub = entry.add_subparsers(dest="entry_command", required=True, parser_class=type(entry))
    c = esub.add_parser("correct", help="change one answer of a submitted diary, with a reason")
    c.add_argument("--subject", required=True)
    c.add_argument(
        "--day", type=int, required=True, help="study day of the diary (Day 0 = injection)"
    )
    c.add_argument("--item", required=True, help="item code, e.g. PAIN")
    c.add_argument("--value", required=True, help="the stored form: option code or number")
    c.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    c.add_argument(
        "--as",
        dest="as_staff",
        type=int,
        required=True,
        metavar="STAFF-ID",
        help="the staff member making the correction (id from `diarybot staff list`)",
    )
    c.set_defaults(func=cmd_correct)


async def cmd_correct(args: argparse.Namespace, rt: Runtime) -> int:
    staff = await repo.staff_by_id(rt.db.conn, args.as_staff)
    if staff is None:
        raise UsageError(f"--as {args.as_staff}: no active staff member with this id")
    if not permissions.allowed(staff.role, permissions.CORRECT):
        raise UsageError(f"--as {args.as_staff}: a {staff.role} may not correct diary answers")
    actor = f"staff:{staff.telegram_id}"
    try:
        done = await correct_entry(
            rt, args.subject, args.day, args.item, args.value, args.reason, actor=actor
        )
    except CorrectionError as exc:
        raise UsageError(str(exc)) from None
    print(f"{done.subject} Day {args.day} ({done.key}) {done.item}: {done.old} -> {done.new}")
    for code, value in done.dropped.items():
        print(f"  dropped {code} = {value!r}: no longer applies")
    for code in done.unanswered:
        print(f"  note: {code} now applies but has no answer; correct it too if known")
    for f in done.findings:
        print(f"  note: the corrected diary meets rule {f.rule} ({f.level}): {f.reason}")
    for r in done.alerts:
        if r.rules:
            verb = "raised" if r.created else "updated"
            rules = ", ".join(r.rules)
            print(f"  {verb} alert #{r.alert_id} ({r.level}) for Day {r.day}: {rules}")
        if r.withdrawn:
            rules = ", ".join(r.withdrawn)
            print(
                f"  alert #{r.alert_id} ({r.level}): Day {r.day} no longer meets {rules}"
                " (noted on the alert; staff decide)"
            )
    if not any(r.rules for r in done.alerts):
        print("  no new alert")
    return 0
