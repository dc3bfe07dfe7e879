"""The alert card and its buttons in every state, durations, permissions (pure, no bot)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.study import load_study
from bot.escalation.permissions import CLINICAL, ENROL, VIEW, allowed
from bot.escalation.views import alert_card, buttons, elapsed, safety_text
from bot.i18n import t
from storage.alerts import Alert

STUDY = load_study()
EN = t("en")
NOW = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # 21:00 Shanghai


def alert(**kw: object) -> Alert:
    base = Alert(
        id=7,
        patient_id=1,
        subject="RP-002",
        rule="BM_URGENT",
        level="urgent",
        reason="Bowel movements 7 or more above baseline",
        status="open",
        details={
            "events": [
                {"key": "daily:3", "day": 3, "answers": {"BM": "10"}, "baseline": {"BM": 7 / 3}}
            ]
        },
        study_day=3,
        answered_at=NOW - timedelta(minutes=80),
        raised_at=NOW - timedelta(minutes=80),
        updated_at=NOW,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        (0, "0 min"),
        (59, "59 min"),
        (60, "1 h 0 min"),
        (61, "1 h 1 min"),
        (47 * 60 + 59, "47 h 59 min"),
        (48 * 60, "2 d 0 h"),
        (-5, "0 min"),
    ],
)
def test_elapsed(minutes: int, text: str) -> None:
    assert elapsed(EN, timedelta(minutes=minutes, seconds=30)) == text


def test_card_shows_answers_baseline_and_time_since_answer() -> None:
    text, rows = alert_card(EN, STUDY, alert(), kind="alert", now=NOW, names={})
    lines = text.splitlines()
    assert lines[0] == "🔴 URGENT · alert #7"
    assert lines[1] == "Subject RP-002 · Day 3"
    assert "• Bowel movements: 10" in lines
    assert "Baseline (median) Bowel movements: 2.3" in lines
    assert "Answered at 19:40 (1 h 20 min ago)" in lines
    assert lines[-1] == "⏳ Waiting for acknowledgement"
    assert rows == [[("Acknowledge", "al:ack:7")]]


def test_buttons_follow_the_state() -> None:
    acked = alert(status="acknowledged", acked_by=1, acked_at=NOW)
    assert [d for row in buttons(EN, acked) for _, d in row] == [
        "al:tri:7:n",
        "al:tri:7:a",
        "al:tri:7:s",
        "al:tri:7:c",
        "al:note:7",
    ]
    contacted = replace(acked, contacted_by=1, contacted_at=NOW)
    assert "al:tri:7:c" not in [d for row in buttons(EN, contacted) for _, d in row]
    sae = replace(acked, triage="sae", triaged_by=1, triaged_at=NOW, sae_aware_at=NOW)
    assert buttons(EN, sae) == [
        [("Reported to sponsor", "al:sae:7")],
        [("Add note", "al:note:7")],
    ]
    closed = replace(sae, status="closed", sae_reported_at=NOW, sae_reported_by=2)
    assert buttons(EN, closed) == [[("Add note", "al:note:7")]]


def test_sae_clock_against_the_protocol_limit() -> None:
    aware = NOW - timedelta(hours=25, minutes=3)
    a = alert(
        status="acknowledged",
        acked_by=1,
        acked_at=aware,
        triage="sae",
        triaged_by=1,
        triaged_at=aware,
        sae_aware_at=aware,
    )
    names = {1: "Anna"}
    text, _ = alert_card(EN, STUDY, a, kind="sae", now=NOW, names=names)
    assert text.startswith("⏰ Possible SAE not yet reported to the sponsor: 25 h 3 min of 24 h")
    assert "Aware since 30 Nov 2026 19:57" in text
    reported = replace(a, sae_reported_at=NOW, sae_reported_by=1, status="closed")
    text, _ = alert_card(EN, STUDY, reported, kind="sae", now=NOW, names=names)
    assert not text.startswith("⏰")
    assert "Reported to the sponsor by Anna at 21:00 (25 h 3 min after awareness)" in text


def test_resend_prefix_only_while_unacknowledged() -> None:
    text, _ = alert_card(EN, STUDY, alert(), kind="resend", now=NOW, names={})
    assert text.startswith("🔁 Not acknowledged for 1 h 20 min")
    acked = alert(status="acknowledged", acked_by=1, acked_at=NOW)
    text, _ = alert_card(EN, STUDY, acked, kind="resend", now=NOW, names={1: "Li"})
    assert text.startswith("🔴 URGENT")
    assert "✅ Acknowledged by Li at 21:00" in text


def test_safety_text_is_the_approved_message_in_both_languages() -> None:
    for lang in ("en", "zh_Hans"):
        text = safety_text(t(lang), STUDY)
        assert STUDY.contact_phone in text and STUDY.emergency_number in text
    en = safety_text(EN, STUDY)
    assert "will contact you" in en
    for word in ("grade", "diagnos", "serious", "adverse"):
        assert word not in en.lower()


def test_roles() -> None:
    assert allowed("coordinator", CLINICAL) and allowed("investigator", CLINICAL)
    assert not allowed("admin", CLINICAL)
    assert all(allowed(r, VIEW) and allowed(r, ENROL) for r in ("coordinator", "admin"))
    assert not allowed("patient", VIEW) and not allowed("coordinator", "delete")
