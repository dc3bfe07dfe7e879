"""`diarybot up` (what `make run` calls) and `diarybot sandbox`, as real processes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bot.localapi import LocalBotApi
from tests.sandbox_support import (
    clean_env,
    free_port,
    launch,
    read_until,
    site_study_file,
    stop,
)


def test_up_without_a_token_starts_the_sandbox_and_says_so_first(tmp_path: Path) -> None:
    port = free_port()
    proc = launch(
        tmp_path,
        "up",
        "--port",
        str(port),
        "--db",
        str(tmp_path / "sandbox.sqlite3"),
        env=clean_env(DIARYBOT_DB=str(tmp_path / "study.sqlite3")),
    )
    try:
        lines = read_until(proc, "seeding", timeout=30)
    finally:
        status = stop(proc)  # Ctrl-C while the demo is being seeded stops cleanly
    assert lines[0].startswith("diarybot: no TELEGRAM_BOT_TOKEN configured: starting the local")
    assert f"http://127.0.0.1:{port}/" in lines[0]
    assert status == 0
    assert not (tmp_path / "study.sqlite3").exists()  # the study database was never touched


def test_up_on_a_fresh_checkout_makes_its_own_folder(tmp_path: Path) -> None:
    """`make run` in a new clone: no sandbox-data/ yet; its lock file and database go there."""
    port = free_port()
    env = clean_env(DIARYBOT_DB=str(tmp_path / "study.sqlite3"))
    proc = launch(tmp_path, "up", "--port", str(port), env=env)
    try:
        read_until(proc, "sandbox ready", timeout=90)
    finally:
        status = stop(proc)
    assert status == 0
    folder = tmp_path / "sandbox-data"
    assert (folder / "sandbox.sqlite3").exists()
    assert folder.stat().st_mode & 0o777 == 0o700
    # A demo: no study audit key to safeguard (the sandbox signs with its fixed demo key).
    assert not (folder / "sandbox.sqlite3.key").exists()


async def test_up_with_a_token_runs_the_real_bot_and_says_so_first(tmp_path: Path) -> None:
    api = LocalBotApi()
    await api.start()
    # The real bot needs the site's own contact phone (the shipped one is a placeholder).
    site_study = site_study_file(tmp_path)
    env = clean_env(
        TELEGRAM_BOT_TOKEN="123456:TEST-TOKEN",
        TELEGRAM_BASE_URL=api.base_url,
        DIARYBOT_DB=str(tmp_path / "study.sqlite3"),
        DIARYBOT_STUDY=str(site_study),
    )
    proc = launch(tmp_path, "up", env=env)
    try:
        lines = await asyncio.to_thread(read_until, proc, "running the real bot", 30)
        # Polling has started once the webhook is cleared (PTB does that just before).
        await api.wait_until(lambda: api.stats["call:deleteWebhook"] > 0, timeout=20)
    finally:
        status = await asyncio.to_thread(stop, proc)
        await api.stop()
    assert lines[0] == "diarybot: TELEGRAM_BOT_TOKEN is set: starting the real bot."
    assert api.stats["call:getMe"] >= 1
    assert status == 0


def test_run_without_a_token_still_refuses(tmp_path: Path) -> None:
    proc = launch(tmp_path, "run", env=clean_env(DIARYBOT_DB=str(tmp_path / "study.sqlite3")))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "@BotFather" in err and out == ""


def test_the_sandbox_never_uses_the_study_database(tmp_path: Path) -> None:
    study_db = tmp_path / "study.sqlite3"
    with sqlite3.connect(study_db) as conn:
        conn.execute("CREATE TABLE precious (x)")
    env = clean_env(DIARYBOT_DB=str(study_db))
    proc = launch(tmp_path, "sandbox", "--db", str(study_db), env=env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "study database" in err

    other = tmp_path / "other.sqlite3"
    other.write_bytes(study_db.read_bytes())
    proc = launch(tmp_path, "sandbox", "--db", str(other), "--port", str(free_port()), env=env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "not a sandbox database" in err
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("precious",)]


def test_bad_port_is_a_usage_error(tmp_path: Path) -> None:
    proc = launch(tmp_path, "sandbox", "--port", "99999", env=clean_env())
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "bad port" in err
