"""The `diarybot` command line: staff, enrol, run without a token; bad arguments exit 2."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("DIARYBOT_DB", str(path))
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_staff_add_list_remove(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "staff",
                "add",
                "--telegram-id",
                "1001",
                "--role",
                "coordinator",
                "--name",
                "Li Wei",
                "--lang",
                "zh",
            ]
        )
        == 0
    )
    assert rows(db, "SELECT telegram_id, role, lang, active FROM staff") == [
        (1001, "coordinator", "zh_Hans", 1)
    ]
    assert main(["staff", "list"]) == 0
    assert "1001\tcoordinator\tzh_Hans\tactive\tLi Wei" in capsys.readouterr().out
    assert main(["staff", "remove", "--telegram-id", "1001"]) == 0
    assert rows(db, "SELECT active FROM staff") == [(0,)]
    assert main(["staff", "remove", "--telegram-id", "1001"]) == 2


def test_enroll_prints_code_and_link_state(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "enroll",
                "--subject",
                "RP-001",
                "--injection-date",
                "2026-12-01",
                "--lang",
                "zh",
                "--timezone",
                "Asia/Shanghai",
                "--prompt-time",
                "20:00",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "RP-001" in out and "not known yet" in out
    code = next(line.split()[1] for line in out.splitlines() if line.startswith("code:"))
    assert len(code) >= 8
    # only the hash is stored; the code itself is nowhere in the database
    assert code not in db.read_bytes().decode("latin-1")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('bot_username', 'nct_diary_bot')")
    assert main(["enroll", "--subject", "RP-002", "--injection-date", "2026-12-02", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["subject"] == "RP-002"
    assert data["link"] == f"https://t.me/nct_diary_bot?start={data['code']}"


@pytest.mark.parametrize(
    "args",
    [
        ["--subject", "RP-009", "--injection-date", "2026-13-01"],
        ["--subject", "RP-009", "--injection-date", "2026-12-01", "--timezone", "Mars/Base"],
        ["--subject", "RP-009", "--injection-date", "2026-12-01", "--prompt-time", "8pm"],
        ["--subject", "RP-009", "--injection-date", "2026-12-01", "--lang", "fr"],
        ["--subject", "RP 009!", "--injection-date", "2026-12-01"],
        ["--subject", "RP-001", "--injection-date", "2026-12-01"],  # duplicate
    ],
)
def test_enroll_bad_arguments_exit_2_and_write_nothing(
    db: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["enroll", "--subject", "RP-001", "--injection-date", "2026-12-01"]) == 0
    capsys.readouterr()
    before = rows(db, "SELECT COUNT(*) FROM patients"), rows(db, "SELECT COUNT(*) FROM audit")
    try:
        status = main(["enroll", *args])
    except SystemExit as exc:
        status = int(exc.code or 0)
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
    after = rows(db, "SELECT COUNT(*) FROM patients"), rows(db, "SELECT COUNT(*) FROM audit")
    assert after == before


def test_staff_unknown_role_exits_2(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["staff", "add", "--telegram-id", "1", "--role", "nurse", "--name", "X"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_run_without_token_exits_2_with_botfather_help(db: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DIARYBOT_DB": str(db), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "@BotFather" in proc.stderr and ".env" in proc.stderr


def test_run_refuses_the_shipped_placeholder_phone(db: Path, tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DIARYBOT_DB": str(db),
        "HOME": str(tmp_path),
        "TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN",
        "TELEGRAM_BASE_URL": "http://127.0.0.1:9/bot",  # never reached: it stops before
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "contact_phone" in err and "placeholder" in err
    assert not db.exists()  # nothing was started or created


def test_every_subcommand_has_help(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["run"], ["staff", "add"], ["enroll"]):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--help"])
        assert exc.value.code == 0
        assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["enroll", "--subject", "RP-009", "--injection-date", "2026-12-01", "--timezone", "Mars/X"],
        ["staff", "remove", "--telegram-id", "4242"],
        ["staff", "group", "--chat-id", "42"],
    ],
)
def test_a_refused_command_in_an_empty_folder_creates_no_database(
    db: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err
    assert not list(db.parent.glob(db.name + "*"))  # no database file, no -wal, no -shm
