"""Settings from the environment (and a `.env` file when present). Never logs the token."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv


@dataclass(frozen=True)
class Settings:
    token: str | None
    base_url: str | None
    base_file_url: str | None
    db_path: Path
    study_path: Path | None
    proxy: str | None = None  # TELEGRAM_PROXY: http://, https:// or socks5:// for the Bot API
    web: str | None = None  # DIARYBOT_WEB: host:port the web diary listens on (bot/web)
    public_url: str | None = None  # DIARYBOT_PUBLIC_URL: what patients open, e.g. https://…

    def __repr__(self) -> str:  # keep the token out of every log line and traceback
        return (
            f"Settings(token={'set' if self.token else 'missing'}, base_url={self.base_url!r}, "
            f"db_path={str(self.db_path)!r}, study_path={self.study_path!r},"
            f" proxy={'set' if self.proxy else None})"
        )


def load_settings(env_file: str | None = ".env") -> Settings:
    # DIARYBOT_ENV_FILE: the service's settings file, for commands run by hand on a server
    # (deploy/diarybot-cli reads /etc/diarybot/diarybot.env as systemd does).
    env_file = os.environ.get("DIARYBOT_ENV_FILE") or env_file
    if env_file and Path(env_file).exists():
        load_dotenv(env_file, override=False)
    base_url = os.environ.get("TELEGRAM_BASE_URL") or None
    base_file_url = os.environ.get("TELEGRAM_BASE_FILE_URL") or None
    if base_url and not base_file_url and base_url.endswith("/bot"):
        base_file_url = base_url[: -len("/bot")] + "/file/bot"
    study = os.environ.get("DIARYBOT_STUDY")
    return Settings(
        token=os.environ.get("TELEGRAM_BOT_TOKEN") or None,
        base_url=base_url,
        base_file_url=base_file_url,
        db_path=Path(os.environ.get("DIARYBOT_DB", "diarybot.sqlite3")),
        study_path=Path(study) if study else None,
        proxy=os.environ.get("TELEGRAM_PROXY") or None,
        web=os.environ.get("DIARYBOT_WEB") or None,
        public_url=(os.environ.get("DIARYBOT_PUBLIC_URL") or "").rstrip("/") or None,
    )
