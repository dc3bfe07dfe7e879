"""`diarybot subject pause|resume|withdraw|reanchor|compliance`: the study team's controls.

    diarybot subject pause RP-001 --reason "hospitalised"
    diarybot subject resume RP-001
    diarybot subject withdraw RP-001 --reason "consent withdrawn"
    diarybot subject reanchor RP-001 --injection-date 2026-12-10 --reason "injection postponed"
    diarybot subject compliance [RP-001] [--json]
    diarybot subject unlink RP-001 --reason "phone lost"

The patient's notice is queued in the outbox; a running bot delivers it (within 30 s). A refusal
prints one line on stderr, exits with status 2 and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from bot.followup import lifecycle
from bot.followup.compliance_report import PatientCompliance, all_compliance, patient_compliance
from bot.followup.lifecycle import LifecycleError
from bot.i18n import t
from bot.services.runtime import Runtime
from conversations import staff_schedule

ACTOR = "cli"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad date {text!r}, expected YYYY-MM-DD") from None


def add(sub: Any) -> None:
    """Add `subject` with its subcommands; each sets `func(args, rt) -> int`."""
    subject = sub.add_parser("subject", help="pause, resume, withdraw, re-anchor a subject")
    # Nested subparsers inherit the parser class (bot.cliargs.Parser: bad arguments exit 2).
    ssub = subject.add_subparsers(dest="subject_command", required=True)
    for name, helptext in (
        ("pause", "pause diaries (paused days are not counted as missed)"),
        ("resume", "resume a paused subject"),
        ("withdraw", "withdraw: no more diaries or reminders; data are kept"),
    ):
        p = ssub.add_parser(name, help=helptext)
        p.add_argument("subject")
        p.add_argument("--reason", default=None)
        p.set_defaults(func=cmd_change)
    p = ssub.add_parser("reanchor", help="move Day 0 (the injection date); recomputes the future")
    p.add_argument("subject")
    p.add_argument("--injection-date", type=_date, required=True)
    p.add_argument("--reason", default=None)
    p.set_defaults(func=cmd_change)
    p = ssub.add_parser(
        "unlink", help="detach a lost or hijacked Telegram account (then: enroll --reissue)"
    )
    p.add_argument("subject")
    p.add_argument("--reason", required=True, help="why, for the audit trail")
    p.set_defaults(func=cmd_unlink)
    p = ssub.add_parser("compliance", help="completed / due: 7 days, 30 days, per phase, overall")
    p.add_argument("subject", nargs="?")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_compliance)


async def cmd_unlink(args: argparse.Namespace, rt: Runtime) -> int:
    from bot.services.enrolment import EnrolError, unlink

    try:
        await unlink(rt, args.subject, reason=args.reason, actor=ACTOR)
    except EnrolError as exc:
        return _fail(str(exc))
    print(
        f"{args.subject}: Telegram account detached; nothing more is sent to it."
        f" Give the patient a new code: diarybot enroll --reissue {args.subject}"
    )
    return 0


def _fail(message: str) -> int:
    print(f"diarybot: error: {message}", file=sys.stderr)
    return 2


async def cmd_change(args: argparse.Namespace, rt: Runtime) -> int:
    command = args.subject_command
    try:
        if command == "pause":
            change = await lifecycle.pause(rt, args.subject, actor=ACTOR, reason=args.reason)
        elif command == "resume":
            change = await lifecycle.resume(rt, args.subject, actor=ACTOR, reason=args.reason)
        elif command == "withdraw":
            change = await lifecycle.withdraw(rt, args.subject, actor=ACTOR, reason=args.reason)
        else:
            change = await lifecycle.reanchor_patient(
                rt, args.subject, args.injection_date, actor=ACTOR, reason=args.reason
            )
    except LifecycleError as exc:
        return _fail(str(exc))
    print(staff_schedule.change_text(t("en"), change))
    for r in change.detail.get("alerts", []):  # a re-anchor re-checks the stored diaries
        if r.rules:
            verb = "raised" if r.created else "updated"
            print(f"  {verb} alert #{r.alert_id} ({r.level}) for Day {r.day}: {', '.join(r.rules)}")
    return 0


def _as_dict(c: PatientCompliance) -> dict[str, Any]:
    def r(x: Any) -> dict[str, Any]:
        return {"completed": x.completed, "due": x.due, "percent": x.percent}

    s = c.summary
    return {
        "subject": c.subject,
        "status": c.status,
        "study_day": c.today_day,
        "last_7_days": r(s.last_7_days),
        "last_30_days": r(s.last_30_days),
        "by_phase": {k: r(v) for k, v in s.by_phase.items()},
        "overall": r(s.overall),
        "missed_in_a_row": s.missed_in_a_row,
        "streak": s.streak,
    }


async def cmd_compliance(args: argparse.Namespace, rt: Runtime) -> int:
    now = rt.now()
    if args.subject:
        try:
            patient = await lifecycle.find_patient(rt.db.conn, args.subject)
        except LifecycleError as exc:
            return _fail(str(exc))
        rows = [await patient_compliance(rt.db.conn, patient, now)]
    else:
        rows = await all_compliance(rt.db.conn, now)
    if args.json:
        print(json.dumps([_as_dict(c) for c in rows], ensure_ascii=False))
        return 0
    _ = t("en")
    names = {p.code: p.name for p in rt.study.phases}
    threshold = rt.study.missed_in_a_row_alert
    for c in rows:
        if args.subject:
            print(staff_schedule.compliance_detail(_, c, names))
        else:
            print(staff_schedule.compliance_line(_, c, threshold))
    return 0
