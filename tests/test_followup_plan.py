"""Visit reminders and the closing message as planned events (pure), and their texts in both
languages (dates through the translator's Babel formatting)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from itertools import pairwise
from pathlib import Path

import pytest

from bot.domain.study import Study
from bot.followup import events
from bot.followup.plan import CLOSING_KEY, planned_events, signature
from bot.i18n import t
from conversations import schedule_view
from tests.followup_support import linked_patient, offline_bot, rows


def test_planned_events(study: Study) -> None:
    events = planned_events(study, date(2027, 3, 1), "Asia/Shanghai", time(20, 0))
    assert [e.key for e in events][:2] == ["visit:M1:3:2027-03-31", "visit:M1:1:2027-03-31"]
    assert len(events) == 2 * len(study.visits) + 1
    assert events[-1].key == CLOSING_KEY and events[-1].kind == "closing"
    assert events[-1].due_at == datetime(2029, 2, 28, 12, 0, tzinfo=UTC)  # Day 730, 20:00
    first = events[0]
    assert first.due_at == datetime(2027, 3, 28, 2, 0, tzinfo=UTC)  # 10:00 local
    assert first.expires_at == datetime(2027, 3, 30, 16, 0, tzinfo=UTC)  # 31 March 00:00
    assert first.data == {
        "visit": "M1",
        "name": "Month 1 visit",
        "days_before": 3,
        "target": "2027-03-31",
        "start": "2027-03-24",
        "end": "2027-04-07",
    }
    assert all(a.due_at <= b.due_at for a, b in pairwise(events))


def test_signature_matches_the_stored_row_format() -> None:
    assert signature(date(2027, 3, 1), "Europe/London", time(8, 5)) == (
        "2027-03-01|Europe/London|08:05"
    )


def test_visit_reminder_text_in_both_languages(study: Study) -> None:
    data = planned_events(study, date(2027, 3, 1), "Asia/Shanghai", time(20, 0))[1].data
    en = schedule_view.visit_reminder_text(t("en"), study, data)
    assert en.splitlines()[0] == "🏥 Reminder: your Month 1 visit is tomorrow, 31 March 2027."
    assert "24 March 2027 to 7 April 2027" in en
    assert study.contact_phone in en
    zh = schedule_view.visit_reminder_text(t("zh_Hans"), study, data)
    assert "2027年3月31日" in zh and "2027年3月24日" in zh and "2027年4月7日" in zh


def test_closing_text_names_the_closing_day(study: Study) -> None:
    text = schedule_view.closing_text(t("en"), study)
    assert "day 730" in text and "complete" in text and study.contact_phone in text


async def test_sync_plans_plans_everyone_in_batches_and_then_nothing(
    tmp_path: Path, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first start after an upgrade plans every patient, a few per write transaction."""
    monkeypatch.setattr(events, "PLAN_BATCH", 2)
    now = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    async with offline_bot(tmp_path / "plan.sqlite3", study, now) as bot:
        for n in range(5):
            await linked_patient(
                bot, f"RP-{n:03d}", date(2026, 12, 1), "Asia/Shanghai", chat_id=600 + n
            )
        await bot.rt.db.execute("DELETE FROM followup_events")
        await bot.rt.db.execute("DELETE FROM followup_plans")
        commits = []
        await bot.rt.db.conn.set_trace_callback(
            lambda s: commits.append(s) if s == "COMMIT" else None
        )
        assert await events.sync_plans(bot.rt, now) == 5
        # aiosqlite annotates the handler as Callable; sqlite3 takes None to remove it
        await bot.rt.db.conn.set_trace_callback(None)  # type: ignore[arg-type]
        assert len(commits) == 3  # 2 + 2 + 1
        per_patient = await rows(
            bot, "SELECT patient_id, COUNT(*) FROM followup_events GROUP BY patient_id"
        )
        assert [n for _, n in per_patient] == [2 * len(study.visits) + 1] * 5
        assert await events.sync_plans(bot.rt, now) == 0  # all planned: nothing to do
