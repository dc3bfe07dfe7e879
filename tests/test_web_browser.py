"""The web diary in a real browser: Debian's headless Chromium (phone-sized, Chinese, a WeChat
user agent), driven by Selenium, against the real bot and its web server on the loopback.

A web patient is enrolled; the browser opens the personal link, passes the year-of-birth check,
fills in the diary one question per screen (with Back, and a change from the review screen),
submits an urgent answer, sees the safety text with its call buttons, and the coordinators get
the alert in Telegram (the harness's loopback Bot API). Selenium blocks, so each browser step
runs in a thread while the event loop serves the pages.

The browser comes from Debian (`.ci/system-packages`); nothing here downloads one. Without it
this test fails: it is not skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from bot.domain.study import Study
from tests.browser_support import act, chromium, navigate
from tests.escalation_support import EN_COORD, ZH_COORD
from tests.web_support import web_harness

WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 12; V2134A) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/111.0 Mobile Safari/537.36 MicroMessenger/8.0.47.2560 WeChat/arm64"
)
PHONE_FLAGS = ("--force-device-scale-factor=1", f"--user-agent={WECHAT_UA}")
# Day -1: dripping blood (urgent), the rest unremarkable.
ANSWERS = {
    "BLEED": "3",
    "BLEED_FAINT": "N",
    "URGENCY": "1",
    "LEAK": "0",
    "PAIN": "2",
    "BM": "3",
    "TENESMUS": "0",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}


@pytest.fixture
def phone() -> Iterator[WebDriver]:
    with chromium(390, 844, "zh-CN", PHONE_FLAGS) as driver:
        yield driver


run = act  # one blocking browser step, while the loop keeps serving the page it asks for


def text(d: WebDriver) -> str:
    return str(d.find_element(By.TAG_NAME, "main").text)


def submit(d: WebDriver, button: Any) -> None:
    """Tap a form's button and wait for the page the server answers with (POST-redirect-GET)."""
    navigate(d, button.click)


def press(d: WebDriver, value: str) -> None:
    submit(d, d.find_element(By.CSS_SELECTOR, f'button[name="do"][value="{value}"]'))


def press_label(d: WebDriver, label: str) -> None:
    for b in d.find_elements(By.TAG_NAME, "button"):
        if label in b.text:
            submit(d, b)
            return
    raise AssertionError(f"no button {label!r} in {text(d)!r}")


def buttons(d: WebDriver) -> list[str]:
    return [str(b.get_attribute("value") or "") for b in d.find_elements(By.NAME, "do")]


def px(d: WebDriver, element: Any, prop: str) -> float:
    return float(
        d.execute_script(f"return parseFloat(getComputedStyle(arguments[0]).{prop})", element)
    )


# Tap targets: buttons, link-buttons (the call buttons), the page's navigation, radio options.
TAPPABLE = "button, a.button, .nav a, label.option"


def measure(d: WebDriver) -> tuple[float, float, float, int, int]:
    """Body text size, the smallest tap target's height, the smallest text size, and the
    page's width against the viewport's."""
    body = d.find_element(By.TAG_NAME, "body")
    sizes = [b.size["height"] for b in d.find_elements(By.CSS_SELECTOR, TAPPABLE)]
    smallest = min(
        px(d, e, "fontSize") for e in d.find_elements(By.CSS_SELECTOR, "p, button, a, label")
    )
    width = d.execute_script("return document.documentElement.scrollWidth")
    view = d.execute_script("return document.documentElement.clientWidth")
    return px(d, body, "fontSize"), min(sizes), smallest, width, view


async def readable(d: WebDriver, where: str) -> None:
    """Older eyes: text ≥ 18 px, every tap target ≥ 48 px tall; nothing wider than the phone."""
    body_px, tap_px, smallest_px, width, view = await run(lambda: measure(d))
    assert body_px >= 18 and smallest_px >= 18, (where, body_px, smallest_px)
    assert tap_px >= 48, (where, tap_px)
    assert width <= view, (where, width, view)


async def test_web_diary_in_a_phone_browser(tmp_path: Path, study: Study, phone: WebDriver) -> None:
    async with web_harness(tmp_path, study) as wh:
        link = await wh.enroll("RP-501", birth_year=1956)
        await wh.h.advance(hours=1, minutes=5)  # 20:05 Shanghai: the Day -1 diary is open
        d = phone

        await run(lambda: d.get(link))
        assert "出生年份" in await run(lambda: text(d))
        # A wrong year first: told clearly, with the tries left.
        await run(lambda: d.find_element(By.ID, "year").send_keys("1965"))
        await run(lambda: press_label(d, "继续"))
        assert "您还可以再试 4 次" in await run(lambda: text(d))
        await run(lambda: d.find_element(By.ID, "year").send_keys("1956"))
        await run(lambda: press_label(d, "继续"))
        page = await run(lambda: text(d))
        assert "第1题" in page and "肛门出血（便血）" in page, page

        await readable(d, "the first question")

        # One question per screen, like the chat; Back returns to the one before.
        occ = (await wh.h.rows("SELECT id FROM occurrences ORDER BY opens_at"))[0]["id"]
        await run(lambda: press(d, f"a:{occ}:BLEED:0"))
        assert "第2题" in await run(lambda: text(d))
        await run(lambda: press_label(d, "上一步"))
        page = await run(lambda: text(d))
        assert "第1题" in page and "✓" in page  # the answer given is ticked
        await run(lambda: d.save_screenshot(str(tmp_path / "web-question.png")))
        for _step in range(30):
            values = await run(lambda: buttons(d))
            if any(v.startswith("x:") for v in values):
                break
            first = next(v for v in values if v[:2] in ("a:", "t:"))
            code = first.split(":")[2]
            if code in ("COMPL", "EVENTS"):
                await run(lambda c=code: press(d, f"t:{occ}:{c}:NONE"))  # type: ignore[misc]
                await run(lambda c=code: press(d, f"n:{occ}:{c}"))  # type: ignore[misc]
            else:
                value = ANSWERS[code] if code != "BLEED" else "0"
                await run(lambda c=code, v=value: press(d, f"a:{occ}:{c}:{v}"))  # type: ignore[misc]
        else:
            raise AssertionError("no review screen")
        review = await run(lambda: text(d))
        await run(lambda: d.save_screenshot(str(tmp_path / "web-review.png")))
        assert "请核对您的回答" in review and "便血：没有" in review
        await readable(d, "the review page")
        # Change bleeding on the review screen: the follow-up question now applies.
        await run(lambda: press(d, f"e:{occ}:BLEED"))
        await run(lambda: press(d, f"a:{occ}:BLEED:3"))
        page = await run(lambda: text(d))
        assert "头晕" in page or "晕" in page, page
        await run(lambda: press(d, f"a:{occ}:BLEED_FAINT:N"))
        review = await run(lambda: text(d))
        assert "滴血或有血块" in review
        await run(lambda: press(d, f"x:{occ}"))

        done = await run(lambda: text(d))
        assert "谢谢您！日记已提交。" in done
        assert "我们已把您的回答转告研究团队" in done and "急救电话120" in done, done
        tel = await run(
            lambda: [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "a.tel")]
        )
        assert tel == ["tel:+862131166666", "tel:120"]
        await readable(d, "the safety page")
        await run(lambda: d.save_screenshot(str(tmp_path / "web-safety.png")))

        # The alert reached the study team in Telegram, in each one's language.
        await wh.h.settle()
        zh = [m.text or "" for m in wh.h.api.messages(ZH_COORD)]
        en = [m.text or "" for m in wh.h.api.messages(EN_COORD)]
        assert any("RP-501" in t and "紧急" in t for t in zh), zh
        assert any("RP-501" in t and "URGENT" in t for t in en), en
        stored = await wh.h.rows(
            "SELECT a.item, a.value FROM answers a JOIN occurrences o ON o.id = a.occurrence_id"
            " WHERE o.status = 'completed' ORDER BY a.item"
        )
        assert dict((r["item"], r["value"]) for r in stored)["BLEED"] == "3"

        # The settings page, reached from the page's own navigation.
        await run(
            lambda: navigate(d, d.find_element(By.CSS_SELECTOR, '.nav a[href$="/settings"]').click)
        )
        assert "/settings" in await run(lambda: d.current_url)
        await readable(d, "the settings page")

        # Reloading the page later shows the same state; the next diary is announced.
        await run(lambda: d.get(link + "/next"))
        assert "下一次日记会在" in await run(lambda: text(d))
        # At 320 CSS px (what 200 % zoom leaves of a small phone) nothing scrolls sideways.
        await run(lambda: d.set_window_size(320, 700))
        await run(lambda: d.get(link + "/help"))
        width, view = await run(
            lambda: (
                d.execute_script("return document.documentElement.scrollWidth"),
                d.execute_script("return document.documentElement.clientWidth"),
            )
        )
        assert width <= view
