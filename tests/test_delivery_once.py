"""Incoming updates are processed once: re-delivered updates and double taps change nothing."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

from telegram import Update
from telegram.ext import CallbackContext

from bot.delivery.reachability import UnreachableChats
from bot.domain.study import Study
from storage.db import UpdateMark, handling_update
from tests.delivery_support import delivery_harness, enrol_linked, restart
from tests.diary_helpers import QUIET, current_item
from tests.harness import Harness, Player


async def _diary_open(h: Harness) -> Player:
    p = await h.patient(501, "RP-001", lang="en")
    await h.advance(hours=1)  # 20:00 Shanghai: the baseline diary prompt
    await p.tap("Start")
    assert current_item(p) == "BLEED"
    return p


async def _answer_audits(h: Harness) -> list[tuple[str, str]]:
    rows = await h.rows("SELECT action, entity FROM audit WHERE action LIKE 'answer%' ORDER BY id")
    return [(r["action"], r["entity"]) for r in rows]


async def test_an_update_delivered_again_after_a_restart_is_not_processed_twice(
    tmp_path: Path, study: Study
) -> None:
    async with delivery_harness(tmp_path, study) as h:
        p = await _diary_open(h)
        diary = p.last_with_buttons()
        button_data = diary.flat_buttons[0][1]
        assert button_data is not None
        occ = button_data.split(":")[2]
        # The patient answers BLEED; keep the raw update as Telegram would re-send it if the
        # bot had died before confirming it.
        h.api.press(
            p.user_id, diary.message_id, f"d:a:{occ}:BLEED:{QUIET['BLEED']}", language_code="en"
        )
        update = copy.deepcopy(h.api.state.updates[-1])
        await h.settle()
        assert current_item(p) == "MUCUS"
        sent_before = len(h.api.state.sent_order)
        edits_before = diary.edits

        await restart(h)
        h.api.state.updates.append(update)  # Telegram delivers it again
        await h.api.wait_updates_consumed(timeout=5)
        await h.settle()

        assert await _answer_audits(h) == [("answer", "baseline:-1/BLEED")]
        rows = await h.rows("SELECT item, value FROM answers")
        assert [(r["item"], r["value"]) for r in rows] == [("BLEED", "0")]
        assert len(h.api.state.sent_order) == sent_before  # no second reply
        assert h.api.messages(p.chat_id)[-1].edits == edits_before
        assert current_item(p) == "MUCUS"
        assert h.bot.app.last_update_id == update["update_id"]


async def test_a_double_tap_stores_one_answer(tmp_path, study: Study) -> None:  # type: ignore[no-untyped-def]
    async with delivery_harness(tmp_path, study) as h:
        p = await _diary_open(h)
        diary = p.last_with_buttons()
        button_data = diary.flat_buttons[0][1]
        assert button_data is not None
        occ = button_data.split(":")[2]
        data = f"d:a:{occ}:BLEED:1"
        for _ in range(2):  # two taps before the bot has answered the first
            h.api.press(p.user_id, diary.message_id, data, language_code="en")
        await h.settle()
        assert await _answer_audits(h) == [("answer", "baseline:-1/BLEED")]
        rows = await h.rows("SELECT item, value FROM answers")
        assert [(r["item"], r["value"]) for r in rows] == [("BLEED", "1")]
        assert current_item(p) == "MUCUS"
        assert diary.edits == 1  # the next question shown once
        assert len(h.api.callback_answers()) == 3  # Start, and both taps answered


async def test_updates_fetched_but_not_processed_are_not_confirmed(tmp_path, study: Study) -> None:  # type: ignore[no-untyped-def]
    """The poller asks Telegram from the last *processed* update, never from the last fetched."""
    async with delivery_harness(tmp_path, study) as h:
        p = await h.patient(501, "RP-001", lang="en")
        before = len(p.messages)
        lock = h.rt.db._lock  # the handler cannot write: processing stalls, polling goes on
        await lock.__aenter__()
        h.api.send_text(p.user_id, "/help", language_code="en")
        poller = h.bot.poller
        assert poller is not None
        deadline = time.monotonic() + 5
        while poller.batches < 2:  # the poller fetched it (no server event tells us when)
            assert time.monotonic() < deadline, "the update was not fetched"
            await asyncio.sleep(0.005)
        # fetched, being handled, not processed: still unconfirmed on the server
        assert h.api.pending_updates == 1
        await lock.__aexit__(None, None, None)
        await h.api.wait_updates_consumed(timeout=5)
        await h.settle()
        assert len(p.messages) == before + 1  # the /help answer


async def test_marking_a_patient_reachable_does_not_mark_their_update_processed(
    tmp_path: Path, study: Study
) -> None:
    """The first commit made while handling an update marks it processed; clearing
    `unreachable` is not the handling, so a crash right after it still re-handles the message."""
    async with delivery_harness(tmp_path, study) as h:
        [user] = await enrol_linked(h, 1)
        await h.rt.db.execute("UPDATE patients SET unreachable = 1 WHERE user_id = ?", (user,))
        message = h.api.send_text(user, "hello", language_code="en")
        update = Update.de_json({"update_id": 99999, "message": message}, h.bot.app.bot)
        mark = UpdateMark(update.update_id)
        token = handling_update.set(mark)
        try:
            await UnreachableChats(h.rt).on_update(update, CallbackContext(h.bot.app))
        finally:
            handling_update.reset(token)
        row = await h.rows("SELECT unreachable FROM patients WHERE user_id = ?", (user,))
        assert row[0]["unreachable"] == 0 and not mark.recorded
