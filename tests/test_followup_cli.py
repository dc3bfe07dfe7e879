"""`diarybot enroll --from-csv` (all rows or none; a bad row names its line; CSV or JSON out)
and `diarybot subject pause|resume|withdraw|reanchor|compliance`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main

HEADER = "subject,injection_date,lang,timezone,prompt_time\n"
GOOD = (
    HEADER
    + "RP-101,2026-12-01,zh,Asia/Shanghai,20:00\n"
    + "RP-102,2026-12-03,en,Europe/London,19:30\n"
    + "RP-103,2026-12-05,,America/New_York,\n"
)


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


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "subjects.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- bulk enrolment


def test_bulk_csv_enrols_every_row_and_prints_csv(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["enroll", "--from-csv", write(tmp_path, GOOD)]) == 0
    out = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["subject"] for r in out] == ["RP-101", "RP-102", "RP-103"]
    assert all(len(r["code"]) >= 8 and r["link"] == "" for r in out)  # username not known yet
    assert rows(
        db,
        "SELECT subject, injection_date, lang, timezone, prompt_time, status FROM patients"
        " ORDER BY subject",
    ) == [
        ("RP-101", "2026-12-01", "zh_Hans", "Asia/Shanghai", "20:00", "invited"),
        ("RP-102", "2026-12-03", "en", "Europe/London", "19:30", "invited"),
        # empty lang: asked at /start; empty time: the study default
        ("RP-103", "2026-12-05", None, "America/New_York", "20:00", "invited"),
    ]
    assert rows(db, "SELECT COUNT(*) FROM audit WHERE action = 'enrol' AND actor = 'cli:csv'") == [
        (3,)
    ]
    # only hashes are stored
    blob = db.read_bytes().decode("latin-1")
    assert not any(r["code"] in blob for r in out)


def test_bulk_csv_json_output_with_links(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["staff", "list"]) == 0  # creates the database
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('bot_username', 'nct_diary_bot')")
    capsys.readouterr()
    assert main(["enroll", "--from-csv", write(tmp_path, GOOD), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["subject"] for d in data] == ["RP-101", "RP-102", "RP-103"]
    for d in data:
        assert d["link"] == f"https://t.me/nct_diary_bot?start={d['code']}"
    assert len({d["code"] for d in data}) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "RP-104,2026-13-01,zh,Asia/Shanghai,20:00\n", "line 5: bad date '2026-13-01'"),
        (GOOD.replace("Europe/London", "Mars/Olympus"), "line 3: unknown time zone"),
        (GOOD.replace("19:30", "7pm"), "line 3: bad time '7pm'"),
        (GOOD.replace(",en,", ",klingon,"), "line 3: unknown language 'klingon'"),
        (
            GOOD + "RP-101,2026-12-09,zh,Asia/Shanghai,20:00\n",
            "line 5: subject RP-101 appears twice",
        ),
        (GOOD.replace("RP-102", "RP 102"), "line 3: bad subject ID"),
        (GOOD.replace(",prompt_time", ""), "line 1: missing column(s): prompt_time"),
    ],
)
def test_bulk_csv_with_a_bad_row_changes_nothing(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    assert main(["enroll", "--from-csv", write(tmp_path, text)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no codes printed for a batch that was not stored
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert not db.exists()  # refused in an empty folder: not even a database file
    # and into an existing database: not one row of the batch
    assert main(["staff", "list"]) == 0
    assert main(["enroll", "--from-csv", write(tmp_path, text)]) == 2
    assert rows(db, "SELECT COUNT(*) FROM patients") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM enrolment_codes") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM audit") == [(0,)]


def test_bulk_csv_row_already_enrolled_changes_nothing(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["enroll", "--subject", "RP-102", "--injection-date", "2026-12-01"]) == 0
    before = rows(db, "SELECT COUNT(*) FROM audit")
    assert main(["enroll", "--from-csv", write(tmp_path, GOOD)]) == 2
    assert "line 3: subject RP-102 is already enrolled" in capsys.readouterr().err
    assert rows(db, "SELECT subject FROM patients") == [("RP-102",)]
    assert rows(db, "SELECT COUNT(*) FROM audit") == before


def test_bulk_csv_missing_file(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enroll", "--from-csv", "nowhere.csv"]) == 2
    assert "nowhere.csv" in capsys.readouterr().err


# --------------------------------------------------------------------------- subject controls


def test_subject_pause_resume_withdraw_reanchor(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["enroll", "--subject", "RP-001", "--injection-date", "2026-12-01"]) == 0
    # Not linked yet: it cannot be paused, but Day 0 can move and it can be withdrawn.
    assert main(["subject", "pause", "RP-001"]) == 2
    assert "RP-001 has not joined the diary yet" in capsys.readouterr().err
    assert (
        main(
            [
                "subject",
                "reanchor",
                "RP-001",
                "--injection-date",
                "2099-01-01",
                "--reason",
                "postponed",
            ]
        )
        == 0
    )
    assert "Day 0 of RP-001 moved from 2026-12-01 to 2099-01-01" in capsys.readouterr().out
    assert rows(db, "SELECT injection_date FROM patients") == [("2099-01-01",)]
    assert rows(db, "SELECT actor, reason FROM audit WHERE action = 'reanchor'") == [
        ("cli", "postponed")
    ]
    assert main(["subject", "reanchor", "RP-001", "--injection-date", "2099-01-01"]) == 2
    assert "already 2099-01-01" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["subject", "reanchor", "RP-001", "--injection-date", "01/01/2099"])
    assert exit_.value.code == 2
    assert "bad date '01/01/2099'" in capsys.readouterr().err
    assert main(["subject", "resume", "RP-404"]) == 2
    assert "There is no patient RP-404." in capsys.readouterr().err
    assert main(["subject", "withdraw", "RP-001", "--reason", "moved away"]) == 0
    assert "RP-001 is withdrawn" in capsys.readouterr().out
    assert rows(db, "SELECT status FROM patients") == [("withdrawn",)]
    assert main(["subject", "withdraw", "RP-001"]) == 2
    assert "has withdrawn" in capsys.readouterr().err


def test_subject_compliance(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enroll", "--subject", "RP-001", "--injection-date", "2026-12-01"]) == 0
    capsys.readouterr()
    assert main(["subject", "compliance", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # nobody active yet
    assert main(["subject", "compliance", "RP-001", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["subject"] == "RP-001" and data[0]["overall"] == {
        "completed": 0,
        "due": 0,
        "percent": None,
    }
    assert main(["subject", "compliance", "RP-001"]) == 0
    assert "Compliance of RP-001" in capsys.readouterr().out
    assert main(["subject", "compliance", "RP-404"]) == 2
