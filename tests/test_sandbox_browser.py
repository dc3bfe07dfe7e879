"""The sandbox in a real browser: Debian's headless Chromium, driven by Selenium.

`diarybot sandbox` runs as a real process (the command `make run` starts without a token); the
browser enrols a patient, lets the clock bring the prompt and the reminder, fills in a diary
with an urgent answer, sees the safety text, and as a coordinator acknowledges and triages the
alert. The web patient's phone shows the SMS the same clock brought, and its link opens the web
diary in the phone-sized frame. Screenshots go to the test's temporary directory; with
UPDATE_DOCS_SCREENSHOTS=1 the English and Chinese ones also replace docs/sandbox-en.png and
docs/sandbox-zh.png.

The browser comes from Debian (`.ci/system-packages` installs chromium and chromium-driver);
nothing here downloads one. Without it this test fails: it is not skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser_support import chromium
from tests.sandbox_support import clean_env, free_port, launch, read_until, stop

DOCS = Path(__file__).resolve().parent.parent / "docs"
T = TypeVar("T")

# The urgent diary: dripping blood (the rest unremarkable). Day -1 asks no fever question.
ANSWERS = {
    "BLEED": "3",
    "BLEED_FAINT": "N",
    "URGENCY": "1",
    "LEAK": "0",
    "PAIN": "2",
    "BM": "3",
    "TENESMUS": "0",
    "FEVER": "N",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = clean_env(DIARYBOT_DB=str(tmp_path / "study.sqlite3"))
    proc = launch(
        tmp_path, "sandbox", "--port", str(port), "--db", str(tmp_path / "sb.sqlite3"), env=env
    )
    try:
        read_until(proc, "sandbox ready", timeout=60)
        yield f"http://127.0.0.1:{port}/"
    finally:
        assert stop(proc) == 0


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium(1400, 1000, "en-GB") as driver:
        yield driver


class Page:
    """The sandbox page as a trainer uses it (re-finding elements: the chats re-render)."""

    def __init__(self, driver: WebDriver, shots: Path) -> None:
        self.d = driver
        self.shots = shots

    def wait(self, check: Callable[[], T | None], what: str, timeout: float = 15) -> T:
        def attempt(_: Any) -> T | None:
            try:
                return check()
            except (
                StaleElementReferenceException,
                ElementClickInterceptedException,
                ElementNotInteractableException,
            ):
                return None  # re-rendered, covered by a toast or not shown yet: look again

        try:
            result = WebDriverWait(self.d, timeout, poll_frequency=0.05).until(attempt)
        except TimeoutException:
            self.shot("timeout")
            raise AssertionError(f"timed out waiting for {what}") from None
        assert result is not None  # `until` returns only a truthy result
        return result

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def _click(self, element: Any) -> bool | None:
        """Click an enabled element; find and click happen in one attempt of `wait`, so an
        element re-rendered between them is found again rather than failing the test."""
        if element is None or not element.is_enabled():
            return None
        element.click()
        return True

    def click(self, css: str) -> None:
        self.wait(lambda: self._click(self.d.find_element(By.CSS_SELECTOR, css)), css)

    def bubbles(self, role: str) -> list[str]:
        nodes = self.d.find_elements(By.CSS_SELECTOR, f"#{role}-messages .msg .bubble")
        return [n.text for n in nodes]

    def wait_text(self, role: str, needle: str, timeout: float = 15) -> None:
        self.wait(
            lambda: any(needle in b for b in self.bubbles(role)) or None,
            f"{needle!r} in the {role} chat",
            timeout,
        )

    def buttons(self, role: str, last_only: bool = False) -> list[Any]:
        scope = f"#{role}-messages .msg:last-child" if last_only else f"#{role}-messages"
        return self.d.find_elements(By.CSS_SELECTOR, f"{scope} button[data-data]")

    def press(self, role: str, match: Callable[[str], bool], what: str) -> None:
        """Tap the newest button whose callback data matches."""

        def target() -> Any:
            hits = [b for b in self.buttons(role) if match(b.get_attribute("data-data") or "")]
            return hits[-1] if hits else None

        self.wait(lambda: self._click(target()), what)

    def type(self, css: str, text: str) -> None:
        """Type into a field once it is shown (a form may appear a moment after a choice)."""

        def attempt() -> bool | None:
            field = self.d.find_element(By.CSS_SELECTOR, css)
            if not (field.is_displayed() and field.is_enabled()):
                return None
            field.clear()
            field.send_keys(text)
            return True

        self.wait(attempt, f"the field {css}")

    def select(self, css: str, value: str) -> None:
        def attempt() -> bool | None:
            options = self.d.find_elements(By.CSS_SELECTOR, f"{css} option")
            if not any(o.get_attribute("value") == value for o in options):
                return None
            Select(self.d.find_element(By.CSS_SELECTOR, css)).select_by_value(value)
            return True

        self.wait(attempt, f"option {value} in {css}")

    def quiet(self) -> None:
        """Until the toasts ("Saved") are gone, for a clean screenshot (mouse off the buttons)."""
        ActionChains(self.d).move_to_element(self.d.find_element(By.ID, "now")).perform()
        self.wait(
            lambda: (
                not any(
                    self.d.find_element(By.ID, f"{role}-toast").is_displayed()
                    for role in ("patient", "staff")
                )
                or None
            ),
            "the toasts to fade",
        )

    def now(self) -> str:
        return self.d.find_element(By.ID, "now").text

    def clock(self, button: str) -> None:
        before = self.now()
        self.click(f"#clock-{button}")
        self.wait(lambda: self.now() != before or None, f"the clock to move ({button})")


def web_sms(page: Page) -> list[str]:
    """The web patient's SMS inbox: each SMS's time and text."""
    nodes = page.d.find_elements(By.CSS_SELECTOR, "#web-sms .sms")
    return [n.text for n in nodes]


def is_(expected: str) -> Callable[[str], bool]:
    return lambda data: data == expected


def fill_urgent_diary(page: Page) -> None:
    """Tap through the open diary as the patient: each question is the chat's last message."""
    seen: set[str] = set()
    for _ in range(30):
        datas = page.wait(
            lambda: (
                [
                    d
                    for b in page.buttons("patient", last_only=True)
                    if (d := b.get_attribute("data-data") or "").startswith("d:") and d not in seen
                ]
                or None
            ),
            "the next diary question",
        )
        if any(d.startswith("d:x:") for d in datas):
            page.press("patient", lambda d: d.startswith("d:x:"), "Submit")
            return
        kind, occ, item = datas[0].split(":")[1:4]
        seen.update(datas)
        if kind == "t":  # several choices: tick, then Done
            page.press("patient", is_(f"d:t:{occ}:{item}:{ANSWERS[item]}"), item)
            page.wait(
                lambda: (
                    any(b.text.startswith("✅") for b in page.buttons("patient", last_only=True))
                    or None
                ),
                f"{item} ticked",
            )
            page.press("patient", is_(f"d:n:{occ}:{item}"), "Done")
        else:
            page.press("patient", is_(f"d:a:{occ}:{item}:{ANSWERS[item]}"), item)
    raise AssertionError("the diary did not reach Submit")


def test_enrol_diary_urgent_answer_alert_acknowledge_triage(
    sandbox_url: str, browser: WebDriver, tmp_path: Path
) -> None:
    page = Page(browser, tmp_path)
    browser.get(sandbox_url)
    page.click("#ui-lang button[data-lang='en']")
    page.wait(lambda: "Diary sandbox" in browser.title or None, "the page")
    page.wait(lambda: " 19:30 " in page.now() or None, "the seeded clock (19:30)")

    # Enrol: the study team's form gives a code; the new phone sends it.
    page.select("#patient-select", "new")
    page.type("#enrol-subject", "RP-901")
    page.select("#enrol-lang", "en")
    page.click("#enrol-submit")
    page.wait(
        lambda: browser.find_element(By.ID, "patient-input").get_attribute("value") or None,
        "the code in the text box",
    )
    value = browser.find_element(By.ID, "patient-input").get_attribute("value")
    assert value is not None and value.startswith("/start ")
    page.click("#patient-send")
    page.wait_text("patient", "Welcome! You are now connected to the study diary as RP-901")

    # Time travel: the prompt at 20:00, then three hours later the reminder.
    page.clock("next")
    page.wait_text("patient", "Time for today's diary")
    assert "20:00" in page.now()
    for _ in range(3):
        page.clock("hour")
    page.wait_text("patient", "A gentle reminder")
    assert "23:00" in page.now()
    page.shot("1-reminder")

    # The diary, from the reminder's Start button, with an urgent answer.
    page.press("patient", lambda d: d.startswith("d:s:"), "Start")
    page.wait_text("patient", "Question 1 of")
    fill_urgent_diary(page)
    page.wait_text("patient", "Thank you! Your diary has been saved.")
    page.wait_text("patient", "emergency department")  # the safety text
    page.shot("2-safety-text")

    # The English-speaking coordinator gets the alert, acknowledges and triages it.
    page.select("#staff-select", "1002")
    page.wait(
        lambda: any("URGENT" in b and "RP-901" in b for b in page.bubbles("staff")) or None,
        "the urgent alert for RP-901",
    )
    ack = [
        d
        for b in page.buttons("staff")
        if (d := b.get_attribute("data-data") or "").startswith("al:ack:")
    ][-1]
    alert = ack.split(":")[2]
    page.press("staff", lambda d: d == ack, "Acknowledge")
    page.wait_text("staff", "Acknowledged by Anna Smith")
    page.press("staff", lambda d: d == f"al:tri:{alert}:a", "AE, not serious")
    page.wait_text("staff", "Triage: AE, not serious")

    # The web patient's phone (RP-W01, moved by the same clock): the SMS inbox has the personal
    # link, the prompt and the reminder; the link opens the web diary in the phone's frame.
    page.wait(lambda: len(web_sms(page)) >= 3 or None, "the web patient's three SMS")
    link, prompt, reminder = web_sms(page)[:3]
    assert "10:00" in link and "/p/" in link, link
    assert "20:00" in prompt and "23:00" in reminder, web_sms(page)
    page.click("#web-sms .sms:first-child a.sms-link")
    frame = browser.find_element(By.ID, "web-frame")
    page.wait(lambda: frame.is_displayed() or None, "the phone's browser")
    assert frame.size["width"] >= 380
    browser.switch_to.frame(frame)
    try:
        page.type("input[name=year]", "1956")
        page.click("button[type=submit]")
        page.wait(
            lambda: (
                any(
                    q in browser.find_element(By.TAG_NAME, "body").text
                    for q in ("第1题", "Question 1")
                )
                or None
            ),
            "the web diary's first question",
        )
    finally:
        browser.switch_to.default_content()
    page.quiet()
    en = page.shot("sandbox-en")

    # The same sandbox in Chinese: page, patient and coordinator.
    page.click("#ui-lang button[data-lang='zh']")
    page.select("#patient-select", "501")  # RP-001, a Chinese-speaking patient with a history
    page.press("patient", lambda d: d.startswith("d:s:"), "开始")
    page.wait_text("patient", "第1题")
    page.select("#staff-select", "1001")  # 李伟, the Chinese-speaking coordinator
    page.wait_text("staff", "RP-003")
    page.wait(lambda: "现在" in browser.find_element(By.CSS_SELECTOR, ".now").text or None, "中文")
    page.click("#web-tab-sms")  # the web patient's SMS inbox
    page.wait(lambda: browser.find_element(By.ID, "web-sms").is_displayed() or None, "短信")
    page.quiet()
    zh = page.shot("sandbox-zh")

    # The study team enrols a web patient on the page: the link arrives in the phone's inbox.
    page.select("#web-select", "new")
    page.type("#web-enrol-subject", "RP-W09")
    page.type("#web-enrol-phone", "+8613900009999")
    page.type("#web-enrol-year", "1949")
    page.click("#web-enrol-submit")
    page.wait(
        lambda: (
            (
                browser.find_element(By.ID, "web-select").get_attribute("value") == "RP-W09"
                and any("/p/" in sms for sms in web_sms(page))
            )
            or None
        ),
        "the link SMS of RP-W09",
    )
    assert len(web_sms(page)) == 1 and "1949" in browser.find_element(By.ID, "web-sub").text

    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        shutil.copyfile(en, DOCS / "sandbox-en.png")
        shutil.copyfile(zh, DOCS / "sandbox-zh.png")
    for shot in (en, zh):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
