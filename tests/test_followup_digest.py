"""The coordinator digest, the "missed 3 in a row" event, and visit reminders across downtime
and restarts (scheduler level: the fake clock drives the tick; messages are read from the
outbox)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from bot.clock import from_iso
from bot.domain.study import Study
from bot.followup import lifecycle
from bot.messenger import Priority
from bot.services import patient_settings
from bot.services.enrolment import enroll
from tests.followup_support import (
    clock,
    complete_diary,
    linked_patient,
    local,
    occurrence_rows,
    offline_bot,
    outbox_texts,
    rows,
)

START = datetime(2027, 3, 1, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


def digest_time(day: int) -> datetime:
    """09:00 Shanghai on 1 March + day."""
    return START + timedelta(days=day, hours=1)


async def staff(bot, telegram_id: int, lang: str) -> None:  # type: ignore[no-untyped-def]
    await bot.rt.db.execute(
        "INSERT INTO staff (telegram_id, role, name, lang, active, created_at)"
        " VALUES (?, 'coordinator', 'C', ?, 1, '2027-01-01T00:00:00.000000Z')",
        (telegram_id, lang),
    )


async def digests(bot, chat_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    found = await rows(
        bot,
        "SELECT payload, priority FROM outbox WHERE chat_id = ? AND ref LIKE 'digest:%'"
        " ORDER BY id",
        (chat_id,),
    )
    assert all(r[1] == Priority.DIGEST for r in found)
    return [json.loads(r[0])["text"] for r in found]


async def test_quiet_day_is_one_line_sent_once_in_each_language(
    tmp_path: Path, study: Study
) -> None:
    path = tmp_path / "d.sqlite3"
    async with offline_bot(path, study, START) as bot:
        await staff(bot, 9001, "en")
        await staff(bot, 9002, "zh_Hans")
        await linked_patient(bot, "RP-001", date(2027, 3, 1), "Asia/Shanghai")
        c = clock(bot)
        await c.set(digest_time(0) - timedelta(minutes=1))
        assert await digests(bot, 9001) == []
        await c.set(digest_time(0))
        first = await digests(bot, 9001)
        assert len(first) == 1 and len(await digests(bot, 9002)) == 1
        assert "Yesterday: no diaries were due." in first[0]
        assert "New enrolments: RP-001" in first[0]

        await c.set(START + timedelta(hours=12, minutes=30))  # 20:30: Day 0 diary open
        occ = await occurrence_rows(bot, "RP-001")
        await complete_diary(bot, "RP-001", occ[0]["id"])
        await c.set(digest_time(1))
        quiet, head_line = (await digests(bot, 9001))[-1].split("\n\n")
        assert quiet == (
            "☀️ Daily summary, 2 March 2027: every diary due yesterday was completed (1). "
            "Nothing needs your attention."
        )
        # Every study-team copy carries the audit trail's head (an outside record of it).
        sent = await rows(bot, "SELECT new_value FROM audit WHERE action = 'digest_sent'")
        number, digest = json.loads(sent[-1][0])["audit_head"].split()
        assert head_line == f"Audit trail head: {number}:{digest}"
        assert (await digests(bot, 9002))[-1].endswith(f"\n\n审计记录链头：{number}:{digest}")
        for hours in (1, 5, 12):
            await c.set(digest_time(1) + timedelta(hours=hours))
        assert len(await digests(bot, 9001)) == 2
        runs = await rows(bot, "SELECT local_date, recipients, quiet FROM digest_runs")
        assert [tuple(r) for r in runs] == [("2027-03-01", 2, 0), ("2027-03-02", 2, 1)]
        now = c.now()
    # A restart the same day does not send it again.
    async with offline_bot(path, study, now + timedelta(minutes=30)) as bot:
        await bot.scheduler.tick()
        assert len(await digests(bot, 9001)) == 2
        followup = bot.hooks.followup
        assert followup is not None  # installed by bot/followup/feature.py
        assert await followup.next_wake(bot.rt.now()) == digest_time(2)


async def test_busy_day_lists_misses_open_diaries_visits_and_new_enrolments(
    tmp_path: Path, study: Study
) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await staff(bot, 9001, "en")
        await linked_patient(bot, "RP-001", date(2027, 3, 1), "Asia/Shanghai")
        # RP-002 (New York) has the Month 1 visit on 7 March; paused, so no diaries are due.
        await linked_patient(bot, "RP-002", date(2027, 2, 5), "America/New_York", chat_id=502)
        await lifecycle.pause(bot.rt, "RP-002", actor="cli")
        c = clock(bot)
        for day in range(1, 4):
            await c.set(digest_time(day))
        await c.set(digest_time(3) + timedelta(hours=19))  # 4 March 20:00 UTC
        await enroll(bot.rt, "RP-003", date(2027, 3, 20), None, "Asia/Shanghai", time(20, 0))
        await c.set(digest_time(4))  # 5 March 09:00 Shanghai
        text = (await digests(bot, 9001))[-1]
        lines = text.splitlines()
        assert lines[0] == "📋 Daily summary, 5 March 2027"
        assert "Yesterday: 0 of 1 diaries completed." in lines
        assert "Not completed: RP-001 (still open)" in lines
        assert "⚠️ Missed 3 or more in a row: RP-001 (3)" in lines
        assert "🏥 Visits in the next 7 days:" in lines
        assert "• RP-002: Month 1 visit on 7 Mar 2027 (window 28 Feb 2027 to 14 Mar 2027)" in lines
        assert "🆕 New enrolments: RP-003" in lines


async def test_three_missed_in_a_row_tell_the_team_once_per_run(
    tmp_path: Path, study: Study
) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await staff(bot, 9001, "en")
        await linked_patient(bot, "RP-001", date(2027, 3, 1), "Asia/Shanghai")
        c = clock(bot)

        async def events() -> list[tuple[str, int, str]]:
            found = await rows(
                bot, "SELECT run_start, missed, routed_to FROM compliance_events ORDER BY id"
            )
            return [tuple(r) for r in found]

        await c.set(START + timedelta(days=3, hours=3))  # 4 March 11:00: Days 0, 1 missed
        assert await events() == []
        await c.set(START + timedelta(days=3, hours=4))  # noon: Day 2 closes — third miss
        assert await events() == [("daily:0", 3, "escalation")]
        await c.set(START + timedelta(days=6, hours=4))  # Days 3-5 missed too: same run
        assert await events() == [("daily:0", 3, "escalation")]
        audit = await rows(
            bot, "SELECT subject, entity FROM audit WHERE action = 'compliance_missed_in_a_row'"
        )
        assert [tuple(r) for r in audit] == [("RP-001", "daily:0")]
        alerts = await rows(bot, "SELECT rule, level FROM alerts")
        assert [tuple(r) for r in alerts] == [("MISSED", "compliance")]

        await c.set(START + timedelta(days=6, hours=12, minutes=30))  # Day 6 diary open
        day6 = next(o for o in await occurrence_rows(bot, "RP-001") if o["key"] == "daily:6")
        await complete_diary(bot, "RP-001", day6["id"])
        await c.set(START + timedelta(days=10, hours=4))  # Days 7, 8, 9 missed: a new run
        assert await events() == [("daily:0", 3, "escalation"), ("daily:7", 3, "escalation")]


async def test_visit_reminders_once_each_across_downtime_and_restarts(
    tmp_path: Path, study: Study
) -> None:
    """Month 1 (Day 30 = 31 March): reminders due 28 March and 30 March at 10:00."""
    path = tmp_path / "d.sqlite3"
    async with offline_bot(path, study, START) as bot:
        await linked_patient(bot, "RP-001", date(2027, 3, 1), "Asia/Shanghai")
        await clock(bot).set(datetime(2027, 3, 27, tzinfo=UTC))
    # Down until 30 March 11:00 local: both reminders are due; only the later one is sent.
    back = datetime(2027, 3, 30, 3, 0, tzinfo=UTC)
    for attempt in range(3):
        async with offline_bot(path, study, back + timedelta(minutes=attempt)) as bot:
            await bot.scheduler.tick()
            texts = [t for t in await outbox_texts(bot, 501) if "Month 1 visit" in t]
            assert len(texts) == 1
            assert "Reminder: your Month 1 visit is tomorrow, 31 March 2027." in texts[0]
    async with offline_bot(path, study, back + timedelta(hours=1)) as bot:
        found = await rows(
            bot,
            "SELECT key, status FROM followup_events WHERE key LIKE 'visit:M1:%' ORDER BY due_at",
        )
        assert [tuple(r) for r in found] == [
            ("visit:M1:3:2027-03-31", "skipped"),
            ("visit:M1:1:2027-03-31", "sent"),
        ]
        reason = await rows(bot, "SELECT reason FROM audit WHERE action = 'visit_reminder_skipped'")
        assert reason[0][0] == "superseded by a later reminder"


async def test_a_reminder_is_not_sent_once_the_visit_day_has_come(
    tmp_path: Path, study: Study
) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        await linked_patient(bot, "RP-001", date(2027, 3, 1), "Asia/Shanghai")
        c = clock(bot)
        await c.set(datetime(2027, 3, 28, 2, 0, tzinfo=UTC))  # 10:00: the 3-day reminder
        await c.set(datetime(2027, 3, 30, 17, 0, tzinfo=UTC))  # 31 March 01:00: target day
        found = await rows(
            bot,
            "SELECT key, status FROM followup_events WHERE key LIKE 'visit:M1:%' ORDER BY due_at",
        )
        assert [tuple(r) for r in found] == [
            ("visit:M1:3:2027-03-31", "sent"),
            ("visit:M1:1:2027-03-31", "skipped"),
        ]


async def test_visit_reminders_follow_a_new_time_zone(tmp_path: Path, study: Study) -> None:
    async with offline_bot(tmp_path / "d.sqlite3", study, START) as bot:
        patient = await linked_patient(bot, "RP-001", date(2027, 3, 1), "Asia/Shanghai")
        await patient_settings.set_timezone(bot.rt, patient, "Europe/London")
        found = await rows(
            bot, "SELECT key, due_at FROM followup_events WHERE status = 'pending' ORDER BY due_at"
        )
        assert found[0]["key"] == "visit:M1:3:2027-03-31"
        assert local(found[0]["due_at"], "Europe/London").time() == time(10, 0)
        closing = found[-1]
        assert closing["key"] == "closing"
        assert local(closing["due_at"], "Europe/London").date() == date(2029, 2, 28)
        assert from_iso(closing["due_at"]) > START


def test_digest_text_caps_long_lists_and_shows_open_review_alerts() -> None:
    from bot.followup.digest import DigestData
    from bot.i18n import t
    from conversations.digest_view import digest_text

    data = DigestData(
        local_date=date(2027, 3, 5),
        completed=70,
        due=100,
        not_completed=[(f"RP-{i:03d}", "missed") for i in range(30)],
        missed_runs=[],
        visits=[],
        new_patients=[],
        review_alerts=[("RP-001", "Pain 8 or more"), ("RP-002", "Pain 8 or more")],
    )
    text = digest_text(t("en"), data)
    assert "Yesterday: 70 of 100 diaries completed." in text
    assert "RP-019 (missed) and 10 more" in text and "RP-020" not in text
    assert text.splitlines()[-2:] == [
        "🔔 Review alerts not yet acknowledged: 2",
        "RP-001 (Pain 8 or more), RP-002 (Pain 8 or more)",
    ]
    assert len(text) < 4096  # one Telegram message


def test_digest_names_the_studys_own_missed_in_a_row_threshold() -> None:
    from bot.followup.digest import DigestData
    from bot.i18n import t
    from conversations.digest_view import digest_text

    data = DigestData(
        local_date=date(2027, 3, 5),
        completed=1,
        due=2,
        not_completed=[("RP-002", "missed")],
        missed_runs=[("RP-002", 4)],
        visits=[],
        new_patients=[],
        missed_threshold=4,
    )
    assert "⚠️ Missed 4 or more in a row: RP-002" in digest_text(t("en"), data)
    assert "连续漏填4次或以上：RP-002" in digest_text(t("zh_Hans"), data)


def test_digest_lists_each_unacknowledged_review_alert() -> None:
    from bot.followup.digest import DigestData
    from bot.i18n import t
    from conversations.digest_view import digest_text

    data = DigestData(
        local_date=date(2027, 3, 5),
        completed=1,
        due=1,
        not_completed=[],
        missed_runs=[],
        visits=[],
        new_patients=[],
        review_alerts=[("RP-003", "Data-change request from the patient")],
    )
    en = digest_text(t("en"), data).splitlines()
    assert en[-2:] == [
        "🔔 Review alerts not yet acknowledged: 1",
        "RP-003 (Data-change request from the patient)",
    ]
    zh = digest_text(t("zh_Hans"), data).splitlines()
    reason = t("zh_Hans")("Data-change request from the patient")
    assert reason != "Data-change request from the patient"  # the reason is translated
    assert zh[-1] == f"RP-003 ({reason})"
