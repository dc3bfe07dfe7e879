"""Which alert card a diary's findings go on: one card per diary and level, not one per rule.

Pure (no SQL, no clock). The escalation service asks `route` every time a diary's findings may
have changed — an answer stored before Submit, Submit itself, a diary closing unsubmitted, a
site correction — and applies the answer:

- findings already reported for this diary on one of its cards are not raised again (Submit does
  not repeat what the answer step already raised);
- a finding the diary no longer meets (the patient changed the answer before submitting, or the
  site corrected it) is never silently withdrawn: its card is told (`withdrawn`) and staff
  decide;
- a new finding goes on the diary's own unacknowledged card if it has one; otherwise on the
  patient's latest unacknowledged card of the same level that already shows every new finding
  (the patient reports the same thing again: the card says "again on Day 42"); otherwise on a
  new card. Once a card is acknowledged it takes no new reports: a new report is a new alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.domain.rules import Finding


@dataclass(frozen=True)
class Card:
    """An alert card of one level as the router sees it."""

    alert_id: int
    open: bool
    """Unacknowledged: it may still take new reports."""
    rules: frozenset[str]
    """Every finding (rule code) the card shows, from any diary."""
    diary_rules: frozenset[str] = frozenset()
    """The findings of *this* diary reported on the card (empty: the diary is not on it)."""

    @property
    def linked(self) -> bool:
        return bool(self.diary_rules)


@dataclass(frozen=True)
class Route:
    new: tuple[str, ...] = ()
    """Findings of the diary not reported on any of its cards yet, in the order given."""
    target: int | None = None
    """The card that takes `new`; None with `new` non-empty: raise a new card."""
    fresh: tuple[str, ...] = ()
    """Those of `new` the target card did not show yet (the card must be delivered again so the
    team is notified, not just edited)."""
    withdrawn: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    """Card → findings of this diary reported on it that the diary no longer meets."""

    @property
    def create(self) -> bool:
        return bool(self.new) and self.target is None


def route(findings: Sequence[str], cards: Sequence[Card]) -> Route:
    """Where the diary's current `findings` (rule codes of one level) go.

    `cards`: the diary's own cards of this level (any state) and the patient's unacknowledged
    cards of this level, oldest first, each once.
    """
    current = set(findings)
    linked = [c for c in cards if c.linked]
    reported: set[str] = set().union(*(c.diary_rules for c in linked)) if linked else set()
    new = tuple(f for f in dict.fromkeys(findings) if f not in reported)
    withdrawn = {
        c.alert_id: tuple(sorted(c.diary_rules - current))
        for c in linked
        if c.diary_rules - current
    }
    target: Card | None = None
    if new:
        own = [c for c in linked if c.open]
        if own:
            target = own[-1]
        else:
            same = [c for c in cards if c.open and set(new) <= c.rules]
            target = same[-1] if same else None
    return Route(
        new=new,
        target=target.alert_id if target else None,
        fresh=tuple(f for f in new if target is not None and f not in target.rules),
        withdrawn=withdrawn,
    )


def by_level(findings: Sequence[Finding], levels: Sequence[str]) -> dict[str, list[Finding]]:
    """The findings of each level, in the order given (study rule order); every level present."""
    return {level: [f for f in findings if f.level == level] for level in levels}
