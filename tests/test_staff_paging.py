"""Staff lists longer than one message page by length (issue 11, section 6).

With 60 open alerts, /alerts and /patient RP-001 exceeded Telegram's 4,096 characters and
Telegram refused the whole message: the staff member got nothing. Now every page fits, Previous
/ Next walk through all of them in place, in English and in Chinese; forged or stale page
buttons change nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import pytest

from bot.clock import iso
from bot.escalation import service
from bot.escalation.staff_views import PAGE_LIMIT, split_pages, utf16_len
from bot.i18n import t
from bot.localapi import SentMessage
from bot.services.enrolment import enroll
from tests.escalation_support import EN_COORD, ZH_COORD
from tests.harness import Harness, Player

LIMIT = 4096
REASONS = (
    "Dripping blood or clots",
    "Pain 8 or more",
    "Emergency visit, hospital stay or transfusion (possible SAE)",
    "Loss of bowel control more than once with severe urgency",
)
COORDS = {"en": EN_COORD, "zh_Hans": ZH_COORD}


def test_split_pages_keeps_whole_lines_in_order_under_the_limit() -> None:
    lines = [f"{i:03d} " + "字" * (i % 50) for i in range(300)]
    pages = split_pages(["head"], lines, limit=500)
    assert [i for page in pages for i in page] == list(range(300))
    for page in pages:
        assert utf16_len("\n".join(["head", *[lines[i] for i in page]])) <= 500
    assert split_pages(["head"], []) == [[]]
    # Emoji count twice, as Telegram counts them.
    assert utf16_len("🔴a") == 3 and PAGE_LIMIT < LIMIT


async def open_alerts(h: Harness, count: int) -> list[int]:
    """`count` open review alerts on RP-001 (enrolled, not linked: no messages to a patient)."""
    await enroll(
        h.rt, "RP-001", date(2026, 11, 30), "en", "Asia/Shanghai", h.study.default_prompt_time
    )
    patient = await h.db_patient("RP-001")
    now = iso(h.clock.now())
    async with h.rt.db.transaction() as conn:
        for i in range(count):
            await conn.execute(
                "INSERT INTO alerts (patient_id, rule, level, reason, details, study_day,"
                " raised_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                (patient.id, f"R{i}", "review", REASONS[i % 4], "{}", i % 14, now, now),
            )
    return [r["id"] for r in await h.rows("SELECT id FROM alerts ORDER BY id")]


async def listed(h: Harness) -> list[int]:
    """The open alerts in the order /alerts lists them."""
    return [a.id for a in await service.unfinished_alerts(h.rt.db.conn)]


def current(h: Harness, message: SentMessage) -> SentMessage:
    return next(m for m in h.api.messages(message.chat_id) if m.message_id == message.message_id)


def ids_in(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"#(\d+) RP-001", text)]


@dataclass(frozen=True)
class Shown:
    """What a page showed (the message object itself changes with every edit)."""

    text: str
    buttons: list[tuple[str, str]]


async def walk(h: Harness, coord: Player, first: SentMessage, lang: str) -> list[Shown]:
    """Every page, pressing Next until there is none; each page edits the same message."""
    _ = t(lang)
    pages: list[Shown] = []
    count = len(h.api.messages(first.chat_id))
    while True:
        msg = current(h, first)
        assert msg.text is not None and utf16_len(msg.text) <= LIMIT
        pages.append(Shown(msg.text, [(label, d or "") for label, d in msg.flat_buttons]))
        nexts = [d for label, d in pages[-1].buttons if label == _("Next \u203a")]
        if not nexts:
            assert len(h.api.messages(first.chat_id)) == count  # edited in place, no new ones
            return pages
        await coord.press_data(nexts[0], msg)
        assert current(h, first).text != pages[-1].text


@pytest.mark.parametrize(
    ("lang", "count", "pages_at_least"),
    [
        ("en", 60, 2),  # English lines are long: 60 need more than one message
        ("zh_Hans", 60, 1),  # Chinese ones are short: 60 may fit, all of them shown
        ("zh_Hans", 150, 2),
    ],
)
async def test_sixty_open_alerts_page_by_length(
    escalation_team: Harness, lang: str, count: int, pages_at_least: int
) -> None:
    h = escalation_team
    _ = t(lang)
    ids = await open_alerts(h, count)
    coord = h.player(COORDS[lang], "en" if lang == "en" else "zh-hans")
    await coord.send("/alerts")
    first = coord.last
    assert first.text and first.text.startswith(_("Open alerts, oldest first:"))
    pages = await walk(h, coord, first, lang)
    assert len(pages) >= pages_at_least
    seen = [n for p in pages for n in ids_in(p.text)]
    assert seen == await listed(h) and sorted(seen) == ids  # every alert once, none lost
    total = len(pages)
    for n, page in enumerate(pages, 1):
        text = page.text
        assert utf16_len(text) <= LIMIT
        if total > 1:
            assert text.splitlines()[-1] == _("Page {page} of {pages}", page=n, pages=total)
        shows = [d for _l, d in page.buttons if d.startswith("al:show:")]
        assert shows == [f"al:show:{i}" for i in ids_in(text)[:10]]
    if total == 1:
        return
    # The last page has Previous only; Previous goes back one page, in place.
    last = current(h, first)
    labels = [label for label, _d in last.flat_buttons]
    assert _("\u2039 Previous") in labels and _("Next \u203a") not in labels
    await coord.tap(_("\u2039 Previous"), last)
    assert current(h, first).text == pages[-2].text


async def test_forged_and_stale_page_buttons_change_nothing(escalation_team: Harness) -> None:
    h = escalation_team
    await open_alerts(h, 60)
    coord = h.player(EN_COORD, "en")
    en = t("en")
    await coord.send("/alerts")
    msg = coord.last
    before = msg.text
    count = len(h.api.messages(coord.chat_id))
    for forged in ("pg:al:7", "pg:al:-1", "pg:al:x", "pg:zz:1", "pg:pd:1:RP-001", "pg:al"):
        await coord.press_data(forged, msg)
        assert coord.last_toast == en("This is not available.")
        assert current(h, msg).text == before
    # Stale: the list shrank to one page since the message was sent.
    await h.rt.db.execute("UPDATE alerts SET status = 'closed' WHERE id > 3")
    await coord.tap(en("Next \u203a"), msg)
    assert coord.last_toast == en("This list has changed. Please send the command again.")
    assert current(h, msg).text == before
    assert len(h.api.messages(coord.chat_id)) == count
    # A patient or a stranger pressing a page button: refused, nothing shown.
    stranger = h.player(4242, "en")
    await stranger.press_data("pg:al:1", msg)
    assert current(h, msg).text == before


@pytest.mark.parametrize(("lang", "count"), [("en", 60), ("zh_Hans", 100)])
async def test_patient_with_many_open_alerts_pages(
    escalation_team: Harness, lang: str, count: int
) -> None:
    h = escalation_team
    _ = t(lang)
    ids = await open_alerts(h, count)
    coord = h.player(COORDS[lang], "en" if lang == "en" else "zh-hans")
    await coord.send("/patient RP-001")
    first = coord.last
    assert first.text and first.text.startswith("RP-001")
    pages = await walk(h, coord, first, lang)
    assert len(pages) >= 2
    assert [n for p in pages for n in ids_in(p.text)] == await listed(h)
    assert sorted(await listed(h)) == ids
    assert _("Last 14 days:") in pages[-1].text


async def test_many_patients_page(escalation_team: Harness) -> None:
    h = escalation_team
    for n in range(1, 71):
        await enroll(
            h.rt, f"RP-{n:03d}", date(2026, 12, 10), "zh_Hans", "Asia/Shanghai",
            h.study.default_prompt_time,
        )  # fmt: skip
    coord = h.player(ZH_COORD, "zh-hans")
    await coord.send("/patients")
    pages = await walk(h, coord, coord.last, "zh_Hans")
    assert len(pages) >= 2
    subjects = [line.split(" · ")[0] for p in pages for line in p.text.splitlines()]
    assert [s for s in subjects if s.startswith("RP-")] == [f"RP-{n:03d}" for n in range(1, 71)]
