"""Telegram updates the bot could not read: kept raw for support (issue 11 §2)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiosqlite

from bot.clock import iso


async def store_unparsable(
    conn: aiosqlite.Connection, now: datetime, update_id: int, raw: Any, error: str
) -> None:
    await conn.execute(
        "INSERT INTO unparsable_updates (update_id, received_at, error, raw) VALUES (?,?,?,?)"
        " ON CONFLICT (update_id) DO NOTHING",
        (update_id, iso(now), error, json.dumps(raw, ensure_ascii=False)),
    )
