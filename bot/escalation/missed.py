"""Names the follow-up feature imports (bot/followup/escalation_link.py).

Escalation does not watch for missed diaries itself: the follow-up's compliance_watch records
each run of misses once and raises the alert through `service.raise_compliance`. `MissedWatch`
is only the type that link checks for among the scheduler hooks; escalation never installs one,
so the follow-up routes the events (one path, no double update).
"""

from __future__ import annotations

from bot.escalation.compliance import BLOCKED_REASON, MISSED_REASON

__all__ = ["BLOCKED_REASON", "MISSED_REASON", "MissedWatch"]


class MissedWatch:
    """Never instantiated by escalation (see the module docstring)."""
