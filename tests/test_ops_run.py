"""`diarybot run` as a real process against the loopback Bot API server, on an old database: it
backs up, migrates, takes its first daily backup, and holds the database so that `restore` and
`migrate` in another process are refused; once it has stopped, the restore goes through."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from bot.localapi import LocalBotApi
from bot.ops.backups import scheduled_backups
from storage.db import latest_version
from tests.ops_support import OLD, build_old
from tests.sandbox_support import site_study_file


def environment(api: LocalBotApi, db: Path, backups: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DIARYBOT_"))}
    env.update(
        TELEGRAM_BOT_TOKEN="123456:TEST-TOKEN",
        TELEGRAM_BASE_URL=api.base_url,
        TELEGRAM_BASE_FILE_URL=api.base_file_url,
        DIARYBOT_DB=str(db),
        DIARYBOT_BACKUP_DIR=str(backups),
        DIARYBOT_STUDY=str(site_study_file(db.parent)),  # `run` refuses the placeholder phone
        PTB_TIMEDELTA="true",
    )
    return env


async def diarybot(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def read_until(stream: asyncio.StreamReader, needle: str) -> list[str]:
    lines: list[str] = []
    while True:
        raw = await asyncio.wait_for(stream.readline(), 120)
        assert raw, f"the bot ended before {needle!r}:\n" + "".join(lines)
        lines.append(raw.decode())
        if needle in lines[-1]:
            return lines


def version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def test_run_migrates_backs_up_and_holds_the_database(tmp_path: Path) -> None:
    db = tmp_path / "diary.sqlite3"
    backups = tmp_path / "backups"
    await build_old(db)
    api = LocalBotApi()
    await api.start()
    env = environment(api, db, backups)
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert bot.stderr is not None
        log = "".join(await read_until(bot.stderr, "is running"))
        assert "migrating" in log and "backup first" in log
        [before] = backups.glob("diarybot-before-migration-*.sqlite3")
        assert version(before) == OLD and version(db) == latest_version()
        [(_, daily)] = scheduled_backups(backups)  # the first daily backup, at start-up
        assert f"backup {daily} verified" in log

        code, _, err = await diarybot(env, tmp_path, "restore", str(before))
        assert code == 2
        assert err == f"diarybot: error: the bot is running on {db}: stop it before restoring\n"
        code, _, err = await diarybot(env, tmp_path, "migrate")
        assert (code, "the bot is running" in err) == (2, True)

        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.communicate(), 120)
        assert bot.returncode == 0
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.communicate()
        await api.stop()

    code, out, _ = await diarybot(env, tmp_path, "restore", str(daily))
    assert code == 0, out
    assert f"restored {daily} -> {db}" in out
    assert "the database that was in place is kept as" in out
