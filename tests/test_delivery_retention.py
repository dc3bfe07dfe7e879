"""Outbox retention: a sent message keeps its text for `message_text_keep_days`, then only its
metadata; a sent file's bytes go at once. Queued and failed rows are never touched."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot import messenger
from bot.delivery import retention
from bot.domain.study import Study, StudyError, load_study
from bot.messenger import Priority
from tests.delivery_support import delivery_harness, outbox, queue

PATIENT = 501


async def test_sent_text_is_stripped_after_the_retention_period(
    tmp_path: Path, study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)  # several batches in one tick
    async with delivery_harness(tmp_path, replace(study, message_text_keep_days=3)) as h:
        for n in range(5):
            await queue(h, PATIENT, f"old message {n}", Priority.REPLY, ref=f"old:{n}")
        await h.settle()
        await h.advance(days=2)
        await queue(h, PATIENT, "newer message", Priority.REPLY)
        await h.settle()
        await h.bot.sender.stop()  # from here on, what is queued stays queued
        await queue(h, PATIENT, "still queued", Priority.REPLY)

        await h.clock.advance(days=1, hours=2)  # a tick; the old ones are now 3 days 2 h old
        rows = await outbox(h)
        old = [r for r in rows if (r["ref"] or "").startswith("old:")]
        assert len(old) == 5 and all(r["pruned_at"] is not None for r in old)
        for r in old:
            payload = json.loads(r["payload"])
            assert "text" not in payload and "buttons" not in payload
            assert r["status"] == "sent" and r["message_id"] and r["sent_at"]  # metadata stays
        kept = {json.loads(r["payload"]).get("text"): r["pruned_at"] for r in rows}
        assert kept["newer message"] is None  # one day old: kept
        assert kept["still queued"] is None  # never sent: kept, whatever its age
        # Telegram still has every message; only our copy of the text is gone.
        assert [m.text for m in h.api.messages(PATIENT)][:5] == [
            f"old message {n}" for n in range(5)
        ]


async def test_a_sent_file_keeps_no_bytes(tmp_path: Path, study: Study) -> None:
    async with delivery_harness(tmp_path, study) as h:
        async with h.rt.db.transaction() as conn:
            await messenger.enqueue_file(
                conn, h.rt.now(), PATIENT, "export.csv", b"subject,item\nRP-001,PAIN\n"
            )
        h.rt.wake_sender()
        await h.settle()
        [row] = await outbox(h, "kind = 'document'")
        assert row["status"] == "sent"
        assert json.loads(row["payload"]) == {"filename": "export.csv", "caption": None}
        [sent] = h.api.messages(PATIENT)
        assert sent.document is not None


def test_the_retention_period_is_checked(tmp_path: Path) -> None:
    source = load_study().source
    text = Path(source).read_text(encoding="utf-8")
    bad = tmp_path / "study.toml"
    bad.write_text(
        text.replace("message_text_keep_days = 30", "message_text_keep_days = 0"), "utf-8"
    )
    with pytest.raises(StudyError, match="message_text_keep_days: must be at least 1 day"):
        load_study(bad)
