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
    WebDriverException,
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


# What chromedriver says about an element or a script while its document is being replaced
# (POST-redirect-GET). Besides the proper stale-element error it sometimes answers a plain
# "unknown error" naming the inspector: seen on CI with chromium 156.
_NAVIGATING = (
    "does not belong to the document",
    "no such execution context",
    "execution context was destroyed",
    "cannot find context with specified id",
    "inspected target navigated or closed",
)


def mid_navigation(exc: WebDriverException) -> bool:
    """True when `exc` only says the page changed under the call: look again."""
    if isinstance(exc, (NoSuchElementException, StaleElementReferenceException)):
        return True
    message = (exc.msg or "").lower()
    return any(part in message for part in _NAVIGATING)


def _until(driver: WebDriver, check: Callable[[WebDriver], T | None], seconds: float) -> T:
    def attempt(drv: WebDriver) -> T | None:
        try:
            return check(drv)
        except WebDriverException as exc:
            if mid_navigation(exc):
                return None
            raise

    result = WebDriverWait(driver, seconds, poll_frequency=0.02).until(attempt)
    assert result is not None  # `until` returns only a truthy result
    return result


def navigate(driver: WebDriver, action: Callable[[], object], seconds: float = 15) -> None:
    """Do `action` (a click that submits a form or follows a link) and wait for the next page.

    The old document is marked with a window property; the wait ends when a document without
    the mark has finished loading. This does not depend on how chromedriver reports the old
    page's elements (stale, or an inspector error), which differs between versions.
    """
    driver.execute_script("window.__diarybotOldPage = true")
    try:
        action()
    except WebDriverException as exc:
        if not mid_navigation(exc):
            raise  # the page navigated away while the click was being reported: waited below
    try:
        _until(
            driver,
            lambda d: (
                d.execute_script(
                    "return window.__diarybotOldPage === undefined"
                    " && document.readyState === 'complete'"
                )
                or None
            ),
            seconds,
        )
    except TimeoutException:
        raise AssertionError(f"no new page after the action: {driver.current_url}") from None


async def wait_for(
    driver: WebDriver, check: Callable[[WebDriver], T], what: str, seconds: float = 15
) -> T:
    def run() -> T:
        try:
            # A page being replaced (POST-redirect-GET) leaves stale elements: look again.
            return _until(driver, check, seconds)
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what}: {driver.current_url}") from None

    return await act(run)
