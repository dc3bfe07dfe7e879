"""`diarybot subject reissue-link RP-001 [--reason …]` and
`diarybot subject channel RP-001 web|telegram --reason …`.

The coordinator sees a web patient's personal link as text and as a QR code drawn in the
terminal (scan it with the patient's phone, or read it out). A refusal prints one line on
stderr, exits with status 2 and changes nothing.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bot.cliargs import NO_REASON_GIVEN, UsageError
from bot.services.enrolment import EnrolError
from bot.services.runtime import Runtime
from bot.web import links


def add(sub: Any) -> None:
    """Add `reissue-link` and `channel` to `diarybot subject` (bot/followup/cli.py makes it)."""
    subject = sub.choices.get("subject")
    if subject is None:
        subject = sub.add_parser("subject", help="a subject's settings")
        subject.add_subparsers(dest="subject_command", required=True)
    ssub = next(a for a in subject._actions if isinstance(a, argparse._SubParsersAction))
    p = ssub.add_parser("reissue-link", help="web patient: a new personal link; the old one stops")
    p.add_argument("subject")
    p.add_argument(
        "--reason",
        default=NO_REASON_GIVEN,
        help=f"why, for the audit trail (default: {NO_REASON_GIVEN!r})",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_reissue)
    p = ssub.add_parser("channel", help="move a patient to the web diary or to Telegram")
    p.add_argument("subject")
    p.add_argument("channel", choices=links.CHANNELS)
    p.add_argument("--phone", help="web: mobile number, E.164 (+8613812345678)")
    p.add_argument("--birth-year", type=int, help="web: asked on a new device")
    p.add_argument("--reason", required=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_channel)


def print_link(subject: str, url: str, *, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"subject": subject, "channel": "web", "link": url}))
        return
    print(f"subject: {subject}   (web diary)")
    print(f"link:    {url}")
    print("         personal: give it only to the patient (SMS, or let them scan the code)")
    print(links.qr_terminal(url), end="")


async def cmd_reissue(args: argparse.Namespace, rt: Runtime) -> int:
    try:
        url = await links.reissue(rt, args.subject, reason=args.reason)
    except EnrolError as exc:
        raise UsageError(str(exc)) from None
    print_link(args.subject, url, as_json=args.json)
    return 0


async def cmd_channel(args: argparse.Namespace, rt: Runtime) -> int:
    try:
        change = await links.change_channel(
            rt,
            args.subject,
            args.channel,
            phone=args.phone,
            birth_year=args.birth_year,
            reason=args.reason,
        )
    except EnrolError as exc:
        raise UsageError(str(exc)) from None
    if change.link:
        print_link(change.subject, change.link, as_json=args.json)
    elif args.json:
        print(json.dumps(change.__dict__))
    else:
        print(f"subject: {change.subject}   now on Telegram")
        if change.code:
            print(f"code:    {change.code}")
        if change.deep_link:
            print(f"link:    {change.deep_link}")
    return 0
