"""Where a diary's findings go (bot/domain/findings.py): one card per diary and level, the same
finding again joins the open card, nothing raised twice, nothing withdrawn silently."""

from __future__ import annotations

import pytest

from bot.domain.findings import Card, Route, by_level, route
from bot.domain.rules import Finding


def card(
    alert_id: int, rules: str, *, open: bool = True, mine: str = ""
) -> Card:  # "PAIN,BLEED" → frozenset
    return Card(
        alert_id,
        open,
        frozenset(r for r in rules.split(",") if r),
        frozenset(r for r in mine.split(",") if r),
    )


CASES: list[tuple[str, list[str], list[Card], Route]] = [
    ("nothing found, no card: nothing to do", [], [], Route()),
    (
        "several urgent findings of one diary: one new card with all of them",
        ["BLEED_HEAVY", "PAIN_SEVERE", "HOSPITAL"],
        [],
        Route(new=("BLEED_HEAVY", "PAIN_SEVERE", "HOSPITAL")),
    ),
    (
        "Submit after the answer step raised it: nothing raised twice",
        ["PAIN_SEVERE"],
        [card(1, "PAIN_SEVERE", mine="PAIN_SEVERE")],
        Route(),
    ),
    (
        "a second finding in the same diary joins the diary's open card (and notifies)",
        ["BLEED_HEAVY", "PAIN_SEVERE"],
        [card(1, "BLEED_HEAVY", mine="BLEED_HEAVY")],
        Route(new=("PAIN_SEVERE",), target=1, fresh=("PAIN_SEVERE",)),
    ),
    (
        "the same finding on the next diary while the card is open: update it",
        ["PAIN_SEVERE"],
        [card(1, "PAIN_SEVERE")],
        Route(new=("PAIN_SEVERE",), target=1),
    ),
    (
        "chronic pain: the latest open card that shows it takes it",
        ["PAIN_SEVERE"],
        [card(1, "PAIN_SEVERE"), card(2, "BLEED_HEAVY,PAIN_SEVERE")],
        Route(new=("PAIN_SEVERE",), target=2),
    ),
    (
        "a finding the open card does not show: a new card",
        ["BLEED_HEAVY"],
        [card(1, "PAIN_SEVERE")],
        Route(new=("BLEED_HEAVY",)),
    ),
    (
        "more findings than the open card shows: a new card with all of them",
        ["BLEED_HEAVY", "PAIN_SEVERE"],
        [card(1, "PAIN_SEVERE")],
        Route(new=("BLEED_HEAVY", "PAIN_SEVERE")),
    ),
    (
        "after acknowledgement a new report is a new alert",
        ["PAIN_SEVERE"],
        [card(1, "PAIN_SEVERE", open=False)],
        Route(new=("PAIN_SEVERE",)),
    ),
    (
        "acknowledged during the diary: only the new finding goes on a new card",
        ["BLEED_HEAVY", "PAIN_SEVERE"],
        [card(1, "BLEED_HEAVY", open=False, mine="BLEED_HEAVY")],
        Route(new=("PAIN_SEVERE",)),
    ),
    (
        "answer changed before Submit: the card is told, never silently withdrawn",
        [],
        [card(1, "BLEED_HEAVY", mine="BLEED_HEAVY")],
        Route(withdrawn={1: ("BLEED_HEAVY",)}),
    ),
    (
        "changed on an acknowledged card too",
        ["PAIN_SEVERE"],
        [card(1, "BLEED_HEAVY,PAIN_SEVERE", open=False, mine="BLEED_HEAVY,PAIN_SEVERE")],
        Route(withdrawn={1: ("BLEED_HEAVY",)}),
    ),
    (
        "changed back: reported already, nothing new, nothing withdrawn",
        ["BLEED_HEAVY"],
        [card(1, "BLEED_HEAVY", mine="BLEED_HEAVY")],
        Route(),
    ),
    (
        "one finding withdrawn, another new: the diary's own open card takes it",
        ["PAIN_SEVERE"],
        [card(1, "BLEED_HEAVY", mine="BLEED_HEAVY")],
        Route(
            new=("PAIN_SEVERE",), target=1, fresh=("PAIN_SEVERE",), withdrawn={1: ("BLEED_HEAVY",)}
        ),
    ),
    (
        "the diary joined an old card as a repeat, then a new finding: that card, notified",
        ["PAIN_SEVERE", "HOSPITAL"],
        [card(1, "PAIN_SEVERE", mine="PAIN_SEVERE")],
        Route(new=("HOSPITAL",), target=1, fresh=("HOSPITAL",)),
    ),
    (
        "a duplicated finding code counts once",
        ["PAIN_SEVERE", "PAIN_SEVERE"],
        [],
        Route(new=("PAIN_SEVERE",)),
    ),
]


@pytest.mark.parametrize(
    ("findings", "cards", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_route(findings: list[str], cards: list[Card], expected: Route) -> None:
    got = route(findings, cards)
    assert got == expected
    assert got.create == (bool(expected.new) and expected.target is None)


def test_by_level_keeps_study_order_and_every_level() -> None:
    def f(rule: str, level: str) -> Finding:
        return Finding(rule=rule, level=level, reason=rule, items=())

    found = [f("A", "urgent"), f("B", "review"), f("C", "urgent")]
    assert by_level(found, ("urgent", "review")) == {
        "urgent": [found[0], found[2]],
        "review": [found[1]],
    }
    assert by_level([], ("urgent", "review")) == {"urgent": [], "review": []}


def test_thirty_days_of_the_same_finding_stay_on_one_open_card() -> None:
    cards: list[Card] = []
    for day in range(30):
        r = route(["PAIN_SEVERE"], cards)
        if day == 0:
            assert r.create
            cards = [card(1, "PAIN_SEVERE")]
        else:
            assert (r.target, r.fresh) == (1, ())
