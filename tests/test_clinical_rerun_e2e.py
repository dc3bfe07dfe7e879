"""What the site changes re-checks the stored diaries (issue 10), end to end through the bot:

- a re-anchor re-runs the rules on the relabelled diaries, with the re-anchor as the time of
  awareness, and raises nothing when nothing changed clinically (no duplicate card);
- a corrected baseline diary re-checks every diary from Day 0 on (the median moves);
- a diary closed incomplete can be corrected (CLI and console go through the same path).
"""

from __future__ import annotations

import argparse
from datetime import date

import pytest

from bot.cliargs import UsageError
from bot.clock import iso
from bot.escalation import service
from bot.escalation.cli import cmd_correct
from bot.followup import lifecycle
from storage import alerts as alert_store
from storage import console as console_store
from tests.console_support import PASSWORD, console_client, csrf_of, member
from tests.diary_helpers import QUIET
from tests.escalation_support import EN_COORD, INVESTIGATOR, alert_messages, day0_patient, submit
from tests.harness import Harness, fill_diary


@pytest.fixture
def h(escalation_team: Harness) -> Harness:
    return escalation_team


async def alerts(h: Harness) -> list[tuple[str, str, int]]:
    rows = await h.rows("SELECT rule, level, study_day FROM alerts ORDER BY id")
    return [(r["rule"], r["level"], r["study_day"]) for r in rows]


async def correct(h: Harness, day: int, item: str, value: str) -> int:
    """`diarybot entry correct …` through its command function, on the running bot's clock."""
    args = argparse.Namespace(
        subject="RP-001", day=day, item=item, value=value, reason="patient phoned",
        as_staff=INVESTIGATOR,
    )  # fmt: skip
    code = await cmd_correct(args, h.rt)
    await h.settle()
    return code


# --------------------------------------------------------------------------- re-anchor


async def test_reanchor_raises_what_relabelled_diaries_now_meet(h: Harness) -> None:
    # Enrolled for an injection on Dec 3: tonight's diary (Nov 30) is baseline Day -3, where
    # 12 bowel movements meet no rule (no baseline rule runs on a baseline diary).
    p = await h.patient(501, "RP-001", lang="en", injection=date(2026, 12, 3))
    await h.advance(hours=1)
    await submit(p, BM="12")
    assert await alerts(h) == []

    # The injection really was on Nov 29: that diary is Day 1, the patient has no baseline,
    # and 12 in 24 hours is the no-baseline urgent fallback: raised now, aware now.
    await h.advance(minutes=30)
    reanchored_at = h.rt.now()
    change = await lifecycle.reanchor_patient(h.rt, "RP-001", date(2026, 11, 29), actor="cli")
    await h.settle()
    assert await alerts(h) == [("BM_NOBASE_URGENT", "urgent", 1)]
    [row] = await h.rows("SELECT id FROM alerts")
    alert = await alert_store.get(h.rt.db.conn, row["id"])
    assert alert is not None
    assert alert.details["aware_at"] == iso(reanchored_at)
    assert service.aware_since(alert) == reanchored_at
    assert [r.alert_id for r in change.detail["alerts"] if r.created] == [alert.id]
    card = alert_messages(h, EN_COORD)[-1].text or ""
    assert "Bowel movements 10 or more in 24 hours (no baseline)" in card
    assert "(time of awareness)" in card
    [trail] = await h.rows("SELECT new_value FROM audit WHERE action = 'reanchor'")
    assert f'"alerts": [{alert.id}]' in trail["new_value"]

    # Moved once more (Day 2 now): the same finding on the same diary, so no second alert.
    cards_before = len(alert_messages(h, EN_COORD))
    await lifecycle.reanchor_patient(h.rt, "RP-001", date(2026, 11, 28), actor="cli")
    await h.settle()
    assert await alerts(h) == [("BM_NOBASE_URGENT", "urgent", 1)]
    assert len(alert_messages(h, EN_COORD)) == cards_before
    assert (await h.rows("SELECT count(*) AS n FROM audit WHERE action = 'alert_raised'"))[0][
        "n"
    ] == 1


async def test_reanchor_that_changes_nothing_clinically_raises_nothing(h: Harness) -> None:
    p = await h.patient(501, "RP-001", lang="en", injection=date(2026, 12, 3))
    await h.advance(hours=1)
    await submit(p)  # a quiet baseline diary
    await lifecycle.reanchor_patient(h.rt, "RP-001", date(2026, 11, 29), actor="cli")
    await h.settle()
    assert await alerts(h) == []
    assert alert_messages(h, EN_COORD) == []


# --------------------------------------------------------------------------- corrections


async def test_correcting_a_baseline_diary_rechecks_every_diary_from_day_0(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # Baseline 2, 6, 6 (median 6); Days 0 and 1 quiet, Day 2 has 9: +3, nothing.
    p = await h.patient(501, "RP-001", lang="en", injection=date(2026, 12, 3))
    await h.advance(hours=1)  # 20:00 Shanghai, Day -3
    for bm in ("2", "6", "6", "2", "2", "9"):
        await submit(p, BM=bm)
        await h.advance(hours=24)
    assert await alerts(h) == []

    # Day -2 was really 2: the baseline median is 2, so Day 2 (not the next diary, Day 0) is
    # now 7 above baseline: urgent, raised at once.
    corrected_at = h.rt.now()
    assert await correct(h, -2, "BM", "2") == 0
    out = capsys.readouterr().out
    assert await alerts(h) == [("BM_URGENT", "urgent", 2)]
    [row] = await h.rows("SELECT id FROM alerts")
    assert f"raised alert #{row['id']} (urgent) for Day 2: BM_URGENT" in out, out
    alert = await alert_store.get(h.rt.db.conn, row["id"])
    assert alert is not None and service.aware_since(alert) == corrected_at


async def test_an_incomplete_diary_can_be_corrected_and_raises(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    p = await day0_patient(h, lang="en")
    await fill_diary(p, dict(QUIET), submit=False)  # answered, never submitted
    await h.advance(hours=16)  # 12:00 next day: the window closes, the diary is incomplete
    [occ] = await h.rows("SELECT * FROM occurrences WHERE key = 'daily:0'")
    assert occ["status"] == "missed" and occ["incomplete_at"]
    assert await alerts(h) == []
    # The console's correction page offers it, as it offers submitted diaries.
    patient = (await h.rows("SELECT id FROM patients WHERE subject = 'RP-001'"))[0]
    listed = await console_store.completed_diaries(h.rt.db.conn, patient["id"])
    assert "daily:0" in [r["key"] for r in listed]

    assert await correct(h, 0, "EVENTS", "HOSP") == 0
    out = capsys.readouterr().out
    assert "RP-001 Day 0 (daily:0) EVENTS: NONE -> HOSP" in out, out
    assert await alerts(h) == [("HOSPITAL", "urgent", 0)]
    card = alert_messages(h, EN_COORD)[-1].text or ""
    assert "The diary closed without being submitted (incomplete)." in card
    [stored] = await h.rows(
        "SELECT value FROM answers WHERE occurrence_id = ? AND item = 'EVENTS'", (occ["id"],)
    )
    assert stored["value"] == "HOSP"


async def test_a_diary_never_answered_still_cannot_be_corrected(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    await day0_patient(h, lang="en")
    await h.advance(hours=16)  # the window closes with nothing answered: missed, no data
    args = argparse.Namespace(
        subject="RP-001", day=0, item="PAIN", value="5", reason="patient phoned",
        as_staff=INVESTIGATOR,
    )  # fmt: skip
    with pytest.raises(UsageError, match="no answered diary on Day 0"):
        await cmd_correct(args, h.rt)
    assert await h.rows("SELECT * FROM answers") == []


async def test_the_console_corrects_an_incomplete_diary(h: Harness) -> None:
    p = await day0_patient(h, lang="en")
    await fill_diary(p, {**QUIET, "PAIN": "3"}, submit=False)
    await h.advance(hours=16)  # the window closes: incomplete
    async with console_client(h) as client:
        await member(h, client, "li@example.org", "investigator", name="Dr Li Na")
        page = await client.get("/console/patients/RP-001/correct")
        html = await page.text()
        assert "(daily:0)" in html  # offered with the submitted diaries
        form = {"day": "0", "item": "PAIN", "value": "9", "reason": "patient phoned: it was 9"}
        resp = await client.post(
            "/console/patients/RP-001/correct",
            data={"csrf": csrf_of(html), **form, "password": PASSWORD},
        )
        assert resp.status == 200 and "3 → 9" in await resp.text()
    [a] = await h.rows("SELECT value FROM answers WHERE item = 'PAIN'")
    assert a["value"] == "9"
    assert await alerts(h) == [("PAIN_SEVERE", "urgent", 0)]
