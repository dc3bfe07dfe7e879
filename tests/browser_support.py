"""Debian's chromium driven by selenium, for pages served by the test's own event loop.

Selenium calls block, so they run in a thread (`act`): the aiohttp server under test keeps
serving in the loop meanwhile. Nothing downloads a browser: chromium and chromedriver come from
Debian (.ci/system-packages) and Selenium Manager is kept offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
T = TypeVar("T")


@contextlib.contextmanager
def chromium(
    width: int = 1280, height: int = 900, lang: str = "en-GB", extra: tuple[str, ...] = ()
) -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert path.exists(), f"{path} missing: run .ci/system-packages (Debian chromium)"
    os.environ["SE_OFFLINE"] = "true"
    profile = tempfile.mkdtemp(prefix="diarybot-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        *FLAGS,
        f"--window-size={width},{height}",
        f"--lang={lang}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def act(fn: Callable[[], T]) -> T:
    """Run one blocking browser step in a thread while the server keeps serving."""
    return await asyncio.to_thread(fn)


async def wait_for(
    driver: WebDriver, check: Callable[[WebDriver], T], what: str, seconds: float = 15
) -> T:
    def run() -> T:
        try:
            # A page being replaced (POST-redirect-GET) leaves stale elements: look again.
            result: T = WebDriverWait(
                driver,
                seconds,
                poll_frequency=0.05,
                ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
            ).until(check)
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what}: {driver.current_url}") from None
        return result

    return await act(run)
