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
from selenium.webdriver.support.ui import Select

from bot.console.app import build
from bot.console.keys import SecretBox
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


async def test_a_signed_correction_and_a_read_only_monitor_in_chromium(h: Harness) -> None:
    """An investigator signs a correction in the browser; a monitor sees the patient's page and
    the alert without a single action (a POST made by hand is refused too: that is
    tests/test_console_alerts.py, over HTTP)."""
    p = await day0_patient(h)
    await submit(p, PAIN="3")
    inv = await invite(h, "li@example.org", "investigator", name="Dr Li Na")
    mon = await invite(h, "mon@example.org", "monitor", name="M. Chen")
    root = web.Application()
    root.add_subapp("/console/", build(h.rt, box=SecretBox(KEY)))
    server = TestServer(root, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("/console/"))

    async def set_up_and_sign_in(d: WebDriver, token: str, email: str) -> None:
        await act(lambda: d.get(f"{base}invite/{token}"))
        await act(lambda: fill(d, password=PASSWORD, password2=PASSWORD))
        await act(lambda: d.find_element(By.ID, "set-password").click())
        shown = await wait_for(d, lambda d: d.find_element(By.ID, "totp-secret").text, "key")
        secret = shown.replace(" ", "")
        await act(lambda: fill(d, code=pyotp.TOTP(secret).at(h.clock.now())))
        await act(lambda: d.find_element(By.ID, "confirm-code").click())
        await wait_for(d, lambda d: d.find_element(By.ID, "to-login"), "account ready")
        await h.clock.advance(timedelta(seconds=31))
        await act(lambda: d.get(f"{base}login"))
        code = pyotp.TOTP(secret).at(h.clock.now())
        await act(lambda: fill(d, email=email, password=PASSWORD, code=code))
        await act(lambda: d.find_element(By.ID, "sign-in").click())
        await wait_for(d, lambda d: "login" not in d.current_url, "signed in")

    try:
        with chromium() as d:
            await set_up_and_sign_in(d, inv, "li@example.org")
            await act(lambda: d.get(f"{base}patients/RP-001/correct"))
            await wait_for(d, lambda d: d.find_element(By.ID, "sign"), "the correction form")
            await act(lambda: Select(d.find_element(By.NAME, "item")).select_by_value("PAIN"))
            await act(lambda: fill(d, value="6", reason="patient phoned: it was 6"))
            await act(lambda: fill(d, password=PASSWORD))
            await act(lambda: d.find_element(By.ID, "sign").click())
            done = await wait_for(d, lambda d: d.find_element(By.ID, "corrected").text, "saved")
            assert "3 → 6" in done
            assert "Dr Li Na" in await act(lambda: d.find_element(By.TAG_NAME, "main").text)
        with chromium() as d:
            await set_up_and_sign_in(d, mon, "mon@example.org")
            await act(lambda: d.get(f"{base}patients/RP-001"))
            await wait_for(d, lambda d: d.find_element(By.ID, "diaries"), "the patient page")
            page = await act(lambda: d.page_source)
            assert "Correct an answer" not in page and 'id="manage-link"' not in page
            assert 'id="link-link"' not in page  # no new link, code or channel either
            await act(lambda: d.get(f"{base}alerts/1"))
            forms = await act(lambda: d.find_elements(By.CSS_SELECTOR, "main form"))
            assert forms == []
    finally:
        await server.close()
    [answer] = await h.rows("SELECT value FROM answers WHERE item = 'PAIN'")
    assert answer["value"] == "6"
    [sig] = await h.rows("SELECT new_value FROM audit WHERE action = 'e_signature'")
    assert "Dr Li Na" in sig["new_value"]
