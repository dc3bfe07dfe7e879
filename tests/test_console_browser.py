"""The console in a real browser (Debian chromium): an invited coordinator sets a password and
TOTP, signs in, and acknowledges an urgent alert raised by a Telegram patient; the coordinators'
Telegram cards change."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from bot.console.keys import SecretBox
from bot.console.web import build
from tests.browser_support import act, chromium, wait_for
from tests.console_support import PASSWORD, invite
from tests.escalation_support import EN_COORD, ZH_COORD, alert_messages, day0_patient, submit
from tests.harness import Harness

KEY = b"0000000000000000000000000000000000000000000="


@pytest.fixture
def h(escalation_team: Harness) -> Harness:
    return escalation_team


def fill(driver: WebDriver, **fields: str) -> None:
    for name, value in fields.items():
        box = driver.find_element(By.NAME, name)
        box.clear()
        box.send_keys(value)


async def test_invited_coordinator_signs_in_and_acknowledges_in_chromium(h: Harness) -> None:
    p = await day0_patient(h)
    await submit(p, BLEED="3", BLEED_FAINT="N")
    [alert] = await h.rows("SELECT id FROM alerts")
    aid = alert["id"]
    token = await invite(
        h, "anna@example.org", "coordinator", telegram_id=EN_COORD, name="Anna Smith"
    )
    root = web.Application()
    root.add_subapp("/console/", build(h.rt, box=SecretBox(KEY)))
    server = TestServer(root, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("/console/"))
    try:
        with chromium() as d:
            await act(lambda: d.get(f"{base}invite/{token}"))
            await act(lambda: fill(d, password=PASSWORD, password2=PASSWORD))
            await act(lambda: d.find_element(By.ID, "set-password").click())
            shown = await wait_for(d, lambda d: d.find_element(By.ID, "totp-secret").text, "key")
            secret = shown.replace(" ", "")
            assert await act(lambda: d.find_element(By.CSS_SELECTOR, ".qr svg").is_displayed())
            code = pyotp.TOTP(secret).at(h.clock.now())
            await act(lambda: fill(d, code=code))
            await act(lambda: d.find_element(By.ID, "confirm-code").click())
            await wait_for(d, lambda d: d.find_element(By.ID, "to-login"), "account ready")
            await act(lambda: d.find_element(By.ID, "to-login").click())
            await wait_for(d, lambda d: d.find_element(By.ID, "sign-in"), "the sign-in page")

            await h.clock.advance(timedelta(seconds=31))  # a fresh code for signing in
            code = pyotp.TOTP(secret).at(h.clock.now())
            await act(lambda: fill(d, email="anna@example.org", password=PASSWORD, code=code))
            await act(lambda: d.find_element(By.ID, "sign-in").click())
            line = await wait_for(d, lambda d: d.find_element(By.ID, f"alert-{aid}").text, "inbox")
            assert "RP-001" in line
            await act(lambda: d.find_element(By.ID, f"alert-{aid}").click())
            card = await wait_for(d, lambda d: d.find_element(By.ID, "card").text, "alert page")
            assert "Dripping blood or clots" in card
            button = await act(
                lambda: d.find_element(By.CSS_SELECTOR, f'button[data-action="al:ack:{aid}"]')
            )
            await act(lambda: button.click())
            await wait_for(
                d,
                lambda d: "Acknowledged by Anna Smith" in d.find_element(By.ID, "card").text,
                "the card acknowledged",
            )
            await act(lambda: d.save_screenshot(str(h.db_path.parent / "console-alert.png")))
    finally:
        await server.close()
    await h.settle()
    [row] = await h.rows("SELECT status, acked_by FROM alerts")
    assert (row["status"], row["acked_by"]) == ("acknowledged", EN_COORD)
    for chat in (EN_COORD, ZH_COORD):
        [card_msg] = alert_messages(h, chat)
        assert "Anna Smith" in (card_msg.text or "")
