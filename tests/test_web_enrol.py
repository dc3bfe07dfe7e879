"""Enrolling web patients: the CLI (link and terminal QR code, CSV columns), staff in Telegram
(/enroll … web: the link and a QR picture), reissuing a link, changing the channel; bad input
exits 2 (or is answered) and writes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import segno  # noqa: F401  (the QR library the CLI draws with)

from bot.cli import main
from bot.domain.study import Study
from tests.escalation_support import ZH_COORD
from tests.web_support import PUBLIC, web_harness

WEB = ["--channel", "web", "--phone", "+8613812345678", "--birth-year", "1956"]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("DIARYBOT_DB", str(path))
    monkeypatch.setenv("DIARYBOT_PUBLIC_URL", PUBLIC + "/")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def enrol(*extra: str) -> int:
    return main(["enroll", "--subject", "RP-201", "--injection-date", "2026-12-01", *extra])


def test_cli_enrols_a_web_patient_with_link_and_qr(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert enrol("--lang", "zh", *WEB) == 0
    out = capsys.readouterr().out
    link = next(line.split()[1] for line in out.splitlines() if line.startswith("link:"))
    assert link.startswith(PUBLIC + "/p/") and len(link) - len(PUBLIC + "/p/") >= 43
    assert "█" in out or "▀" in out or "▄" in out  # the QR code, drawn in the terminal
    token = link.rsplit("/", 1)[1]
    stored = rows(db, "SELECT token_hash FROM web_links")
    assert len(stored) == 1 and token not in stored[0][0]  # only its hash
    assert rows(db, "SELECT channel, phone, birth_year, status FROM patients") == [
        ("web", "+8613812345678", 1956, "active")
    ]
    assert rows(db, "SELECT COUNT(*) FROM occurrences")[0][0] > 0
    assert rows(db, "SELECT COUNT(*) FROM enrolment_codes") == [(0,)]
    audit = "".join(r[0] or "" for r in rows(db, "SELECT new_value FROM audit"))
    assert "8613812345678" not in audit and token not in audit

    # Reissue: a new link, the old one revoked.
    assert main(["subject", "reissue-link", "RP-201"]) == 0
    out = capsys.readouterr().out
    new = next(line.split()[1] for line in out.splitlines() if line.startswith("link:"))
    assert new != link
    assert rows(db, "SELECT revoked_at IS NOT NULL FROM web_links ORDER BY id") == [(1,), (0,)]

    # Back to Telegram: a one-time code, links revoked, the phone forgotten.
    assert main(["subject", "channel", "RP-201", "telegram", "--reason", "has Telegram now"]) == 0
    out = capsys.readouterr().out
    assert "code:" in out
    assert rows(db, "SELECT channel, phone, birth_year FROM patients") == [("telegram", None, None)]
    assert rows(db, "SELECT COUNT(*) FROM web_links WHERE revoked_at IS NULL") == [(0,)]
    # And to the web again: the year of birth must be given again.
    assert (
        main(
            [
                "subject",
                "channel",
                "RP-201",
                "web",
                "--phone",
                "+8613812345678",
                "--reason",
                "no VPN",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "subject",
                "channel",
                "RP-201",
                "web",
                "--phone",
                "+8613812345678",
                "--birth-year",
                "1956",
                "--reason",
                "no VPN",
            ]
        )
        == 0
    )
    assert rows(db, "SELECT channel FROM patients") == [("web",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--channel", "web", "--phone", "13812345678", "--birth-year", "1956"], "E.164"),
        (["--channel", "web", "--phone", "+8613812345678", "--birth-year", "56"], "year of birth"),
        (["--channel", "web", "--birth-year", "1956"], "phone"),
        (["--phone", "+8613812345678"], "web patients only"),
    ],
)
def test_cli_refuses_bad_web_enrolment(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert enrol(*args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not db.exists()  # a refused command leaves no database behind


def test_cli_web_enrolment_needs_the_public_url(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIARYBOT_PUBLIC_URL")
    assert enrol(*WEB) == 2
    assert "DIARYBOT_PUBLIC_URL" in capsys.readouterr().err


def test_csv_enrols_web_and_telegram_rows(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = db.parent / "subjects.csv"
    csv.write_text(
        "subject,injection_date,lang,timezone,prompt_time,channel,phone,birth_year\n"
        "RP-301,2026-12-01,zh,,,web,+8613812345678,1950\n"
        "RP-302,2026-12-01,en,,,,,\n",
        encoding="utf-8",
    )
    assert main(["enroll", "--from-csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert f"RP-301,,{PUBLIC}/p/" in out
    assert rows(db, "SELECT subject, channel FROM patients ORDER BY subject") == [
        ("RP-301", "web"),
        ("RP-302", "telegram"),
    ]
    bad = db.parent / "bad.csv"
    bad.write_text(
        "subject,injection_date,lang,timezone,prompt_time,channel,phone,birth_year\n"
        "RP-303,2026-12-01,zh,,,web,+8613812345678,1950\n"
        "RP-304,2026-12-01,zh,,,web,12345,1950\n",
        encoding="utf-8",
    )
    assert main(["enroll", "--from-csv", str(bad)]) == 2
    assert "line 3" in capsys.readouterr().err
    assert rows(db, "SELECT COUNT(*) FROM patients") == [(2,)]


async def test_staff_enrol_a_web_patient_in_telegram(tmp_path: Path, study: Study) -> None:
    async with web_harness(tmp_path, study) as wh:
        coord = wh.h.player(ZH_COORD)
        await coord.send("/enroll RP-401 2026-12-01 zh web +8613812345678 1956")
        texts = coord.texts()
        assert any("RP-401" in t and PUBLIC + "/p/" in t for t in texts), texts
        photo = coord.last
        assert photo.photo is not None and photo.photo.startswith(b"\x89PNG")
        assert "RP-401" in (photo.text or "")  # the caption
        # A bad phone number is answered, in the coordinator's Chinese, and stores nothing.
        await coord.send("/enroll RP-402 2026-12-01 zh web 12345 1956")
        assert coord.last_text == "登记未成功：请按国际格式填写手机号码，例如 +8613812345678。"
        assert await wh.h.rows("SELECT subject FROM patients WHERE subject = 'RP-402'") == []


def test_web_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import load_settings
    from bot.web.app import WebDiary

    monkeypatch.setenv("DIARYBOT_WEB", "127.0.0.1:8090")
    monkeypatch.setenv("DIARYBOT_PUBLIC_URL", "https://diary.example-hospital.cn/")
    settings = load_settings(env_file=None)
    assert settings.web == "127.0.0.1:8090"
    assert settings.public_url == "https://diary.example-hospital.cn"
    with pytest.raises(ValueError, match="host:port"):
        WebDiary(None, None, "8090")  # type: ignore[arg-type]


def test_run_refuses_a_bad_web_address(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST")
    monkeypatch.setenv("DIARYBOT_WEB", "8090")
    assert main(["run"]) == 2
    assert "DIARYBOT_WEB must be host:port" in capsys.readouterr().err
    assert not db.exists()
