"""The package as a hospital's IT person gets it: the lock pins what production runs, and the
wheel (built from the sdist) installs into a fresh venv outside the checkout and starts.

The install is honest: the runtime packages come from requirements.lock with their hashes
(what the Dockerfile and `make run` install), then the wheel is installed with `--no-index`,
so a dependency missing from the lock fails the install instead of being hidden. uv does the
venv and the installs from its download cache, which keeps this test at a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bot.localapi import LocalBotApi
from tests.sandbox_support import site_study_file

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
UV = Path(sys.executable).parent / "uv"
TEST_ONLY = {"pytest", "pytest-asyncio", "ruff", "mypy", "selenium", "lxml", "aiosmtpd", "uv"}

pytestmark = pytest.mark.packaging


def locked() -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes) for every pin in requirements.lock."""
    pins: dict[str, tuple[str, int]] = {}
    current = ""
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\],]+)==([^ ;\\]+)", line)
        if m:
            current = canonicalize_name(m.group(1).split("[")[0])
            pins[current] = (m.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def test_lock_matches_pyproject_and_holds_no_test_tools() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = locked()
    for dep in project["dependencies"]:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock"
        assert req.specifier.contains(pins[name][0], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name][0]}, pyproject.toml wants {req}:"
            " run `make lock`"
        )
    assert all(hashes for _, hashes in pins.values()), "every pin carries its hashes"
    assert not TEST_ONLY & set(pins), "test tools do not belong in the production lock"
    # the lock says how it was made, and `make lock` makes it the same way
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    command = re.search(r"uv pip compile pyproject.toml[^\n]*\\\n[^\n]*", makefile)
    assert command is not None
    flags = " ".join(command.group(0).replace("\\\n", " ").split())
    header = " ".join(LOCK.read_text(encoding="utf-8").splitlines()[1].lstrip("# ").split())
    assert header.startswith(flags.removesuffix(" -q -o requirements.lock")), (header, flags)


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    sdist: Path

    @property
    def diarybot(self) -> Path:
        return self.venv / "bin" / "diarybot"


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("TELEGRAM_", "DIARYBOT_"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """sdist → wheel (uv build), a fresh venv in a temporary folder, the lock, the wheel."""
    work = tmp_path_factory.mktemp("installed")
    dist = work / "dist"
    # Build from a copy of the tracked files (as an sdist would see them), so nothing is
    # written into the checkout other engineers and tests are using.
    src = work / "src"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    _run(UV, "build", "--quiet", "--out-dir", dist, src, cwd=work)
    [sdist] = dist.glob("diarybot-*.tar.gz")
    [wheel] = dist.glob("diarybot-*.whl")
    venv = work / "venv"
    _run(UV, "venv", "--quiet", "--python", sys.executable, venv, cwd=work)
    python = venv / "bin" / "python"
    _run(
        UV,
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
        "--require-hashes",
        "-r",
        LOCK,
        cwd=work,
    )
    _run(UV, "pip", "install", "--quiet", "--python", python, "--no-index", wheel, cwd=work)
    return Installed(venv, wheel, sdist)


def test_wheel_and_sdist_carry_the_catalogs(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
    for locale in ("zh_Hans", "en"):
        assert f"bot/locales/{locale}/LC_MESSAGES/messages.mo" in names
    assert "bot/locales/messages.pot" in names  # the sandbox's catalog screen reads it
    # the web diary's pages (templates and stylesheet) and the console's alert-link page
    for name in ("web/templates/diary.html", "web/static/web.css", "console/templates/ack.html"):
        assert f"bot/{name}" in names, name
    assert "bot/studies/nct06438809.toml" in names or any(
        n.startswith("bot/studies/") for n in names
    )
    with tarfile.open(installed.sdist) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    assert "locales/zh_Hans/LC_MESSAGES/messages.po" in members
    assert "requirements.lock" in members and "setup.py" in members


def test_installed_package_runs_outside_the_checkout(installed: Installed, tmp_path: Path) -> None:
    result = _run(installed.diarybot, "--help", cwd=tmp_path)
    assert "run" in result.stdout and "watchdog" in result.stdout
    where = _run(
        installed.venv / "bin" / "python",
        "-c",
        "import bot, bot.i18n, importlib.metadata as m; print(bot.__file__);"
        " print(bot.i18n.LOCALE_DIR); print(m.version('diarybot'))",
        cwd=tmp_path,
    ).stdout.split()
    assert all(str(installed.venv) in line for line in where[:2]), where
    check = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import pytest"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0  # no test tools in the production environment


@pytest.fixture
async def api() -> AsyncIterator[LocalBotApi]:
    server = LocalBotApi()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_installed_bot_starts_against_the_loopback_server(
    installed: Installed, tmp_path: Path, api: LocalBotApi
) -> None:
    token = "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
    env = clean_env(
        DIARYBOT_DB=str(tmp_path / "bot.sqlite3"),
        TELEGRAM_BOT_TOKEN=token,
        TELEGRAM_BASE_URL=api.base_url,
        DIARYBOT_LOG_FORMAT="json",
        DIARYBOT_STUDY=str(site_study_file(tmp_path)),  # `run` refuses the placeholder phone
    )
    enrol = await asyncio.create_subprocess_exec(
        str(installed.diarybot),
        *("enroll", "--subject", "RP-100", "--injection-date", "2026-12-01", "--lang", "zh"),
        "--json",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await enrol.communicate()
    assert enrol.returncode == 0, err.decode()
    code = json.loads(out)["code"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        str(installed.diarybot),
        "run",
        "--health",
        f"127.0.0.1:{port}",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None and proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any("is running" in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, f"the bot exited: {lines}"
                lines.append(line)
        api.send_text(801, f"/start {code}", language_code="zh-hans")
        welcome = await api.wait_for_message(801, timeout=30)
        assert "RP-100" in (welcome.text or "")
        assert re.search(r"[\u4e00-\u9fff]", welcome.text or "")  # the Chinese catalog loaded
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"
    finally:
        if proc.returncode is None:
            proc.terminate()
        async with asyncio.timeout(30):
            rest = (await proc.stderr.read()).decode()
            await proc.wait()
    assert proc.returncode == 0, [*lines, rest]
    logged = [line for line in "".join(lines).splitlines() + rest.splitlines() if line.strip()]
    for line in logged:
        json.loads(line)  # one JSON object per line, tracebacks included
    text = "\n".join(logged)
    assert token not in text and code not in text
