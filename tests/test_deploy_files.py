"""The service files say what docs/deploy.md promises (Docker is not available to build the
image here; these checks keep the files from drifting)."""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

from bot.web.server import parse_trusted_proxies

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


def test_docker_serves_the_web_diary_to_the_proxy_on_the_host() -> None:
    """Inside the container 127.0.0.1 is unreachable from the host: the image listens on every
    address, compose publishes on the host's loopback only, and the address the host's proxy
    comes from (the network's gateway) is the trusted proxy."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    env = dict(re.findall(r"^\s*(?:ENV\s+)?(DIARYBOT_[A-Z_]+)=(\S+?)\s*\\?$", text, re.M))
    assert env["DIARYBOT_WEB"] == "0.0.0.0:8090"
    assert env["DIARYBOT_HEALTH"] == "0.0.0.0:9102"
    [expose] = re.findall(r"^EXPOSE (.+)$", text, re.M)
    assert set(expose.split()) == {"8090", "9102"}
    compose = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    published = re.findall(r'^\s+- "([0-9.]+:[0-9]+:[0-9]+)"$', compose, re.M)
    assert sorted(published) == ["127.0.0.1:8090:8090", "127.0.0.1:9102:9102"]
    service = compose.split("\n  watchdog:")[0]
    assert re.search(r"^\s+DIARYBOT_WEB: 0\.0\.0\.0:8090$", service, re.M)
    assert re.search(r"^\s+DIARYBOT_HEALTH: 0\.0\.0\.0:9102$", service, re.M)
    [trusted] = re.findall(r"^\s+DIARYBOT_TRUSTED_PROXIES: (\S+)$", service, re.M)
    [gateway] = re.findall(r"^\s+gateway: (\S+)$", compose, re.M)
    assert trusted == gateway
    assert parse_trusted_proxies(trusted)  # a value `diarybot run` accepts


def test_every_setting_in_the_example_is_documented() -> None:
    example = (DEPLOY / "diarybot.env.example").read_text(encoding="utf-8")
    keys = set(re.findall(r"^#?([A-Z][A-Z_]+)=", example, re.M))
    doc = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert {"TELEGRAM_BOT_TOKEN", "TELEGRAM_PROXY", "DIARYBOT_SMTP_URL"} <= keys
    assert sorted(key for key in keys if key not in doc) == []
    assert all(f"deploy/{p.name}" in doc for p in DEPLOY.iterdir())


# Settings the bot reads that the example leaves out on purpose.
NOT_IN_THE_EXAMPLE = {
    "TELEGRAM_BASE_URL",  # tests and development: the loopback Bot API server (bot/localapi)
    "TELEGRAM_BASE_FILE_URL",  # the same, for files
    "DIARYBOT_ENV_FILE",  # the path of this very file, for commands run by hand (diarybot-cli)
    "DIARYBOT_BACKUP_FILE",  # given to DIARYBOT_BACKUP_HOOK's command, not read by the bot
    "DIARYBOT_BACKUP_HEAD",  # the same
}
ENV_NAME = re.compile(r"^(?:DIARYBOT|TENCENTCLOUD|ALIBABA_CLOUD|ALIYUN|TELEGRAM)_[A-Z0-9_]+$")


def environment_names() -> set[str]:
    """Every string constant in bot/ and storage/ that is an environment variable's name (how
    they are read: os.environ.get("…"), env.get("…"), env["…"], _need(env, "…"),
    ENV = "…" then os.environ.get(ENV), f"DIARYBOT_BACKUP_KEEP_{key}")."""
    names = set()
    for folder in ("bot", "storage"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if ENV_NAME.match(node.value):
                        names.add(node.value)
    return names


def test_every_setting_the_bot_reads_is_in_the_example() -> None:
    example = (DEPLOY / "diarybot.env.example").read_text(encoding="utf-8")
    keys = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", example, re.M))
    names = environment_names()
    assert {"DIARYBOT_WEB", "DIARYBOT_TRUSTED_PROXIES", "TENCENTCLOUD_SECRET_KEY"} <= names
    assert NOT_IN_THE_EXAMPLE <= names  # the allow-list names only settings that exist
    prefixes = {n for n in names if n.endswith("_")}  # f"DIARYBOT_BACKUP_KEEP_{key}"
    missing = sorted(n for n in names - prefixes - NOT_IN_THE_EXAMPLE if n not in keys)
    assert missing == []
    assert all(any(k.startswith(p) for k in keys) for p in prefixes), prefixes
    # Hook variables are still explained where the hook is.
    assert "DIARYBOT_BACKUP_FILE" in example and "DIARYBOT_BACKUP_HEAD" in example
