"""The flood benchmark (bench/flood.py) still runs: its scenario in small.

Two patients, a 50-update flood, short pauses, on the bench's own FakeClock and loopback
server. The benchmark's numbers are not checked (that is bench/flood.py's job, with the real
pacing and limits); this test only catches a bench that no longer follows the diary (as when
the safety text became its own message and the diary went on below it). The flood guard's
buckets get a frozen clock, so what is dropped does not depend on the machine's speed: each
patient's dozen taps fit in the burst, the stranger's flood does not.
"""

from __future__ import annotations

from bench import flood
from bot.delivery.inbound import InboundLimits
from tests.conftest import MACHINE_SPEED


class FrozenTime:
    def __call__(self) -> float:
        return 1000.0


async def test_flood_bench_scenario_completes() -> None:
    out = await flood.evening(
        True,
        think=0.02,
        every=0.5,
        patients=2,
        burst=50,
        pacing=MACHINE_SPEED,
        inbound=InboundLimits(burst=30, per_second=1.0, per_minute=1000),
        guard_time=FrozenTime(),
    )
    assert out["submitted"] == 2
    assert out["diaries_completed"] == 2
    assert out["alert_urgent_tap_to_coordinator_s"] >= 0  # recorded; its value is not checked
    assert out["tap_samples"] >= 2 * 9  # every patient answered every question
    assert out["flood_updates"] >= 50
    assert out["flood_dropped"] > 0
    assert out["flood_messages_to_stranger"] <= 1
