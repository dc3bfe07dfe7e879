"""The alerts inbox: the same alert, the same actions and the same Telegram cards as in chat."""

from __future__ import annotations

import re

import pytest

from tests.console_support import console_client, csrf_of, member
from tests.escalation_support import EN_COORD, ZH_COORD, alert_messages, day0_patient, submit
from tests.harness import Harness


@pytest.fixture
def h(escalation_team: Harness) -> Harness:
    return escalation_team


async def urgent_alert(h: Harness) -> int:
    p = await day0_patient(h)
    await submit(p, BLEED="3", BLEED_FAINT="N")
    [row] = await h.rows("SELECT id FROM alerts")
    return int(row["id"])


def actions_on(html: str) -> list[str]:
    return re.findall(r'name="action" value="([^"]+)"', html)


async def test_acknowledging_in_the_console_changes_every_telegram_card(h: Harness) -> None:
    aid = await urgent_alert(h)
    async with console_client(h) as client:
        await member(
            h,
            client,
            "wang@example.org",
            "coordinator",
            telegram_id=ZH_COORD,
            name="Wang Fang",
            lang="zh_Hans",
        )
        inbox = await (await client.get("/console/")).text()
        assert f"#{aid} RP-001" in inbox
        page = await client.get(f"/console/alerts/{aid}")
        html = await page.text()
        assert "滴血或有血块" in html  # the card, in the member's language
        assert actions_on(html) == [f"al:ack:{aid}"]
        resp = await client.post(
            f"/console/alerts/{aid}",
            data={"csrf": csrf_of(html), "action": f"al:ack:{aid}"},
            allow_redirects=False,
        )
        assert resp.status == 303
        await h.settle()
        [alert] = await h.rows("SELECT status, acked_by FROM alerts")
        assert (alert["status"], alert["acked_by"]) == ("acknowledged", ZH_COORD)
        [en_card] = alert_messages(h, EN_COORD)
        assert "Acknowledged by Wang Fang" in (en_card.text or "")
        # Triage offered next, in the console too; a possible SAE starts the clock.
        html = await (await client.get(f"/console/alerts/{aid}")).text()
        assert f"al:tri:{aid}:s" in actions_on(html)
        await client.post(
            f"/console/alerts/{aid}", data={"csrf": csrf_of(html), "action": f"al:tri:{aid}:s"}
        )
        html = await (await client.get(f"/console/alerts/{aid}")).text()
        assert f"al:sae:{aid}" in actions_on(html)
        await client.post(
            f"/console/alerts/{aid}",
            data={"csrf": csrf_of(html), "action": f"al:note:{aid}", "note": "Called, stable."},
        )
    await h.settle()
    [alert] = await h.rows("SELECT triage, triaged_by, note, sae_aware_at FROM alerts")
    assert (alert["triage"], alert["triaged_by"], alert["note"]) == (
        "sae",
        ZH_COORD,
        "Called, stable.",
    )
    assert alert["sae_aware_at"] is not None
    rows = await h.rows(
        "SELECT actor, action FROM audit WHERE action IN"
        " ('alert_acknowledged', 'alert_triaged', 'alert_note') ORDER BY id"
    )
    assert {r["actor"] for r in rows} == {f"staff:{ZH_COORD}"}  # one identity


async def test_acknowledged_in_telegram_shows_in_the_console_and_stale_forms_change_nothing(
    h: Harness,
) -> None:
    aid = await urgent_alert(h)
    async with console_client(h) as client:
        await member(
            h, client, "anna@example.org", "coordinator", telegram_id=EN_COORD, name="Anna Smith"
        )
        html = await (await client.get(f"/console/alerts/{aid}")).text()
        csrf = csrf_of(html)
        # Meanwhile the Chinese coordinator acknowledges in Telegram.
        await h.player(ZH_COORD).tap("确认", alert_messages(h, ZH_COORD)[0])
        page = await client.get(f"/console/alerts/{aid}")
        assert "Acknowledged by Wang Fang" in await page.text()
        # The form loaded before is stale: refused, nothing changes.
        resp = await client.post(
            f"/console/alerts/{aid}", data={"csrf": csrf, "action": f"al:ack:{aid}"}
        )
        assert resp.status == 409
        assert "has changed in the meantime" in await resp.text()
        # Forged actions: another alert's button, an unknown verb, junk.
        for forged in (f"al:ack:{aid + 1}", f"al:tri:{aid}:x", "al:zap", "x" * 500):
            resp = await client.post(
                f"/console/alerts/{aid}", data={"csrf": csrf, "action": forged}
            )
            assert resp.status == 409
    [alert] = await h.rows("SELECT status, acked_by, triage FROM alerts")
    assert (alert["status"], alert["acked_by"], alert["triage"]) == ("acknowledged", ZH_COORD, None)


@pytest.mark.parametrize("role", ["monitor", "admin"])
async def test_read_only_roles_see_no_buttons_and_their_posts_are_refused(
    h: Harness, role: str
) -> None:
    aid = await urgent_alert(h)
    async with console_client(h) as client:
        await member(h, client, f"{role}@example.org", role)
        html = await (await client.get(f"/console/alerts/{aid}")).text()
        assert "Dripping blood or clots" in html
        assert actions_on(html) == []
        resp = await client.post(
            f"/console/alerts/{aid}", data={"csrf": csrf_of(html), "action": f"al:ack:{aid}"}
        )
        assert resp.status == 403
        assert "Your role does not allow this." in await resp.text()
    [alert] = await h.rows("SELECT status FROM alerts")
    assert alert["status"] == "open"
    [refusal] = await h.rows("SELECT new_value FROM audit WHERE action = 'console_refused'")
    assert role in refusal["new_value"]


async def test_viewing_an_alert_is_audited_as_staff_access(h: Harness) -> None:
    aid = await urgent_alert(h)
    async with console_client(h) as client:
        await member(h, client, "mon@example.org", "monitor")
        await client.get(f"/console/alerts/{aid}")
        assert (await client.get("/console/alerts/99999")).status == 404
    rows = await h.rows("SELECT actor, subject, entity FROM audit WHERE action = 'staff_access'")
    assert [(r["subject"], r["entity"]) for r in rows][-1] == ("RP-001", f"alert:{aid}")
    assert rows[-1]["actor"].startswith("staff:-")


async def test_a_link_to_an_alert_returns_there_after_signing_in(h: Harness) -> None:
    from tests.console_support import PASSWORD, accept_invite, code_at, invite

    aid = await urgent_alert(h)
    async with console_client(h) as client:
        secret = await accept_invite(h, client, await invite(h, "a@example.org", "coordinator"))
        resp = await client.get(f"/console/alerts/{aid}", allow_redirects=False)
        assert resp.status == 303
        login = resp.headers["Location"]
        assert login == f"/console/login?next=/console/alerts/{aid}"
        html = await (await client.get(login)).text()
        assert f'name="next" value="/console/alerts/{aid}"' in html
        for bad in ("https://evil.example/", "//evil.example/x", "/p/elsewhere"):
            page = await client.get("/console/login", params={"next": bad})
            assert 'name="next" value=""' in await page.text()
        resp = await client.post(
            "/console/login",
            data={
                "csrf": csrf_of(html),
                "email": "a@example.org",
                "password": PASSWORD,
                "code": code_at(h, secret),
                "next": f"/console/alerts/{aid}",
            },
            allow_redirects=False,
        )
        assert resp.status == 303 and resp.headers["Location"] == f"/console/alerts/{aid}"


async def test_reporting_a_possible_sae_to_the_sponsor_from_the_console(h: Harness) -> None:
    aid = await urgent_alert(h)
    async with console_client(h) as client:
        await member(
            h, client, "anna@example.org", "coordinator", telegram_id=EN_COORD, name="Anna Smith"
        )

        async def press(action: str) -> int:
            html = await (await client.get(f"/console/alerts/{aid}")).text()
            assert action in actions_on(html), actions_on(html)
            resp = await client.post(
                f"/console/alerts/{aid}",
                data={"csrf": csrf_of(html), "action": action},
                allow_redirects=False,
            )
            return resp.status

        assert await press(f"al:ack:{aid}") == 303
        assert await press(f"al:tri:{aid}:s") == 303  # a possible SAE: the clock starts
        [alert] = await h.rows("SELECT sae_reported_at, status FROM alerts")
        assert alert["sae_reported_at"] is None and alert["status"] != "closed"
        assert await press(f"al:sae:{aid}") == 303  # "reported to sponsor"
        await h.settle()
        html = await (await client.get(f"/console/alerts/{aid}")).text()
        assert f"al:sae:{aid}" not in actions_on(html)  # done: not offered again
    [alert] = await h.rows(
        "SELECT status, sae_reported_at, sae_reported_by, sae_next_reminder_at FROM alerts"
    )
    assert alert["status"] == "closed" and alert["sae_reported_at"] is not None
    assert alert["sae_reported_by"] == EN_COORD and alert["sae_next_reminder_at"] is None
    rows = await h.rows(
        "SELECT actor, action FROM audit WHERE action IN ('alert_sae_reported', 'alert_closed')"
        " ORDER BY id"
    )
    assert [(r["actor"], r["action"]) for r in rows] == [
        (f"staff:{EN_COORD}", "alert_sae_reported"),
        (f"staff:{EN_COORD}", "alert_closed"),
    ]
