"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

# PTB 22 warns when building RetryAfter unless timedelta mode is on; tests run with -W error.
os.environ.setdefault("PTB_TIMEDELTA", "true")
# One audit key for every test database, so a copied database still verifies; the key file
# beside a database (made and printed on first use) is tested with this unset (test_privacy).
os.environ["DIARYBOT_AUDIT_KEY"] = "test-audit-key-0123456789abcdef0123456789"

from bot.domain.study import Study, load_study
from bot.sender import Pacing
from tests.harness import Harness, running_harness

# Test players tap at machine speed; people tap about once a second, which the per-chat token
# bucket refills. Flood control itself is tested in tests/test_delivery_*.py with real pacing.
MACHINE_SPEED = Pacing(private_interval=0.0, private_burst=1000, group_interval=0.0)

# 2026-11-30 19:00 in Shanghai: the evening before the injection day in most tests.
T0 = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def study() -> Study:
    return load_study()


@pytest.fixture
async def harness(tmp_path, study: Study) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    async with running_harness(tmp_path, study, start=T0, pacing=MACHINE_SPEED) as h:
        yield h


@pytest.fixture
async def escalation_team(tmp_path, study: Study) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    """The bot with the study team of tests/escalation_support.py (coordinators in zh and en,
    an investigator, an admin, the team's group)."""
    from tests.escalation_support import fast_harness, team  # it imports T0 from here

    async with fast_harness(tmp_path, study) as h:
        await team(h)
        yield h
