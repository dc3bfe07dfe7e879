"""`diarybot status`: the outbox, unreachable patients and open alerts, for the operator.

Read-only. `--json` prints the same snapshot for monitoring scripts.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bot.delivery.status import report, snapshot
from bot.services.runtime import Runtime


async def cmd_status(args: argparse.Namespace, rt: Runtime) -> int:
    snap = await snapshot(rt.db, rt.now())
    if args.json:
        print(json.dumps(snap.as_dict(), ensure_ascii=False, sort_keys=True))
    else:
        print(report(snap))
    return 0


def add(sub: Any) -> None:
    """Add subcommands to the `diarybot` parser; each sets `func(args, rt) -> int`."""
    status = sub.add_parser(
        "status", help="queue depth, oldest queued message, unreachable patients, open alerts"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)
