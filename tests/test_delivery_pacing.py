"""FloodGate: the flood-control rules as pure bookkeeping (no I/O, time passed in)."""

from __future__ import annotations

import math
import random

import pytest

from bot.delivery.pacing import SMOOTH_SLACK, FloodGate, Pacing, Scope
from bot.messenger import Priority

PATIENT = 501
OTHER = 502
GROUP = -100123


def gate(**kw: float) -> FloodGate:
    return FloodGate(Pacing(**kw), random.Random(7))  # type: ignore[arg-type]


def send(g: FloodGate, chat: int, start: float, latency: float = 0.01) -> None:
    g.start(chat, start)
    g.finish(chat, start + latency)


def test_overall_rate_is_smooth_and_capped_by_completion_time() -> None:
    g = gate()
    now = 0.0
    starts = []
    for n in range(90):
        chat = 1000 + n
        now = max(now, g.ready_at(chat, Priority.PROMPT, now))
        starts.append(now)
        send(g, chat, now, latency=0.02)
    # smooth (at most SMOOTH_SLACK + 1 back to back), never more than 30 completions a second
    for i, t in enumerate(starts):
        assert sum(1 for s in starts[i:] if s < t + 0.01) <= SMOOTH_SLACK + 1
    done = [s + 0.02 for s in starts]
    for i, t in enumerate(done):
        assert sum(1 for d in done[: i + 1] if d > t - 1.0) <= 30
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 29.0 <= rate <= 30.5  # (the first few back to back)


def test_in_flight_sends_count_until_they_complete() -> None:
    g = gate(overall_per_second=2)
    g.start(1, 0.0)
    g.start(2, 0.5)
    assert g.overall_ready_at(0.6) == math.inf  # both on the wire: only a completion frees one
    g.finish(1, 0.7)
    assert g.overall_ready_at(0.8) == pytest.approx(1.7)  # 0.7 + one second


def test_private_chat_scheduled_messages_one_a_second_replies_may_burst() -> None:
    g = gate()
    send(g, PATIENT, 0.0)  # completes at 0.01
    assert g.chat_ready_at(PATIENT, Priority.PROMPT, 0.1) == pytest.approx(1.01)
    assert g.chat_ready_at(PATIENT, Priority.URGENT, 0.1) == pytest.approx(1.01)
    # a reply to the patient's own tap goes at once, up to a burst of three
    assert g.chat_ready_at(PATIENT, Priority.REPLY, 0.1) == 0.1
    send(g, PATIENT, 0.1)
    send(g, PATIENT, 0.2)
    # the burst is used up: one a second from here (a token bucket refilled once a second)
    assert g.chat_ready_at(PATIENT, Priority.REPLY, 0.3) == pytest.approx(1.01)
    assert g.chat_ready_at(PATIENT, Priority.PROMPT, 0.3) == pytest.approx(3.01)
    # a patient tapping about once a second never waits
    t = 1.01
    for _ in range(10):
        assert g.chat_ready_at(PATIENT, Priority.REPLY, t) <= t
        send(g, PATIENT, t)
        t += 1.02
    assert g.chat_ready_at(OTHER, Priority.PROMPT, 0.3) == 0.3  # other chats are not affected


def test_group_minute_keeps_room_for_urgent_alerts() -> None:
    g = gate()
    t = 0.0
    for _ in range(15):
        t = g.chat_ready_at(GROUP, Priority.DIGEST, t)
        send(g, GROUP, t)
    assert t == pytest.approx(14 * 1.01)  # one a second
    assert g.chat_ready_at(GROUP, Priority.DIGEST, t + 1.1) == pytest.approx(60.01)
    urgent_at = g.chat_ready_at(GROUP, Priority.URGENT, t + 1.1)
    assert urgent_at == pytest.approx(t + 1.1)
    for _ in range(5):
        urgent_at = g.chat_ready_at(GROUP, Priority.URGENT, urgent_at)
        send(g, GROUP, urgent_at)
    assert g.chat_ready_at(GROUP, Priority.URGENT, urgent_at + 1.5) == pytest.approx(60.01)
    held, free_at = g.held_chats(urgent_at + 1.5)
    assert held == [GROUP] and free_at == pytest.approx(60.01)


def test_retry_after_for_a_quiet_chat_pauses_everyone() -> None:
    g = gate()
    g.start(PATIENT, 0.0)  # first message to this chat: a per-chat limit cannot explain a 429
    g.finish(PATIENT, 0.01)
    assert g.on_retry_after(PATIENT, 5, 0.01) is Scope.GLOBAL
    assert g.ready_at(OTHER, Priority.URGENT, 1.0) == pytest.approx(5.01)


def test_retry_after_after_a_reply_burst_pauses_that_chat_only() -> None:
    g = gate()
    send(g, PATIENT, 0.0)
    g.start(PATIENT, 0.1)
    g.finish(PATIENT, 0.11)
    assert g.on_retry_after(PATIENT, 4, 0.11) is Scope.CHAT
    assert g.chat_ready_at(PATIENT, Priority.REPLY, 1.0) == pytest.approx(4.11)
    assert g.ready_at(OTHER, Priority.PROMPT, 1.0) == 1.0
    held, _ = g.held_chats(1.0)
    assert held == [PATIENT]
    # a second chat getting a 429 within the second means the bot as a whole is over
    send(g, OTHER, 1.0)
    g.start(OTHER, 1.5)
    g.finish(OTHER, 1.51)
    assert g.on_retry_after(OTHER, 2, 1.51) is Scope.CHAT  # OTHER was busy; PATIENT's is old
    g.start(OTHER + 1, 1.6)
    g.finish(OTHER + 1, 1.61)
    assert g.on_retry_after(OTHER + 1, 2, 1.61) is Scope.GLOBAL


def test_backoff_grows_with_jitter_and_is_bounded() -> None:
    g = gate(backoff_base=0.5, backoff_max=4.0, quick_attempts=5, outage_failures=100)
    delays = [g.on_network_error(PATIENT, attempt, 0.0) for attempt in range(1, 5)]
    for attempt, delay in enumerate(delays, start=1):
        base = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert 0.5 * base <= delay <= 1.5 * base
    assert not g.should_park(4) and g.should_park(5) and g.should_park(10)
    # after parking the quick sequence starts again from the first delay
    assert g.on_network_error(PATIENT, 6, 0.0) <= 0.75
    assert 90 <= g.park_delay() <= 150


def test_an_outage_pauses_every_chat() -> None:
    g = gate(outage_failures=3)
    for n in range(3):
        g.on_network_error(1000 + n, 1, 0.0)
    assert g.overall_ready_at(0.0) > 0.0
    g.on_success(1000)
    g2 = gate(outage_failures=3)
    g2.on_network_error(1, 1, 0.0)
    g2.on_success(1)
    g2.on_network_error(2, 1, 0.0)
    assert g2.overall_ready_at(0.0) == 0.0  # failures not in a row: no outage


def test_idle_chats_are_forgotten() -> None:
    g = gate()
    for n in range(50):
        send(g, 1000 + n, n * 0.04)
    g.finish(99, 200.0)  # any completion prunes (at most every 10 s)
    assert len(g._chats) == 1
