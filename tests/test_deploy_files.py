"""The service files say what docs/deploy.md promises (Docker is not available to build the
image here; these checks keep the files from drifting)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / name).read_text(encoding="utf-8"))
    return parser


def test_systemd_unit_restarts_and_is_locked_down() -> None:
    service = unit("diarybot.service")["Service"]
    assert service["Restart"] == "always"
    assert service["EnvironmentFile"] == "/etc/diarybot/diarybot.env"
    assert service["ExecStart"] == "/opt/diarybot/venv/bin/diarybot run"
    assert service["User"] == "diarybot" and service["UMask"] == "0077"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/diarybot"
    assert service["CapabilityBoundingSet"] == ""


def test_watchdog_timer_runs_the_watchdog() -> None:
    assert unit("diarybot-watchdog.service")["Service"]["ExecStart"].endswith("diarybot watchdog")
    assert unit("diarybot-watchdog.timer")["Timer"]["OnUnitActiveSec"] == "5min"


def test_dockerfile_uses_the_lock_a_plain_user_the_font_and_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --require-hashes -r requirements.lock" in text
    assert "pip install --no-index" in text and "pip check" in text
    assert re.search(r"^USER diarybot$", text, re.M)
    assert "fonts-wqy-microhei" in text
    assert re.search(r"^HEALTHCHECK .*\n.*127\.0\.0\.1:9102/healthz", text, re.M)
    assert all("-slim" in line for line in text.splitlines() if line.startswith("FROM"))
    compose = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert "diarybot-data:/data" in compose and "restart: always" in compose
    assert "127.0.0.1:9102:9102" in compose and "diarybot watchdog" in compose


def test_every_setting_in_the_example_is_documented() -> None:
    example = (DEPLOY / "diarybot.env.example").read_text(encoding="utf-8")
    keys = set(re.findall(r"^#?([A-Z][A-Z_]+)=", example, re.M))
    doc = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert {"TELEGRAM_BOT_TOKEN", "TELEGRAM_PROXY", "DIARYBOT_SMTP_URL"} <= keys
    assert sorted(key for key in keys if key not in doc) == []
    assert all(f"deploy/{p.name}" in doc for p in DEPLOY.iterdir())
