"""Console accounts over real HTTP: invitation, password rules, TOTP, lockout, sessions, CSRF."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from datetime import timedelta

import pytest

from bot.cli import cmd_staff
from tests.console_support import (
    PASSWORD,
    accept_invite,
    console_client,
    csrf_of,
    form_csrf,
    invite,
    member,
    sign_in,
)
from tests.harness import Harness


async def audit_actions(h: Harness, like: str = "console_%") -> list[str]:
    rows = await h.rows("SELECT action FROM audit WHERE action LIKE ? ORDER BY id", (like,))
    return [r["action"] for r in rows]


async def test_invited_member_sets_password_and_totp_then_signs_in(harness: Harness) -> None:
    h = harness
    async with console_client(h) as client:
        token = await invite(h, "zhou@example.org", "coordinator")
        path = f"/console/invite/{token}"
        csrf = await form_csrf(client, path)
        for bad, expect in (
            ("short pass", "at least 12"),
            ("password1234", "common passwords"),
            ("aaaaaaaaaaaaaaaa", "too easy to guess"),
        ):
            resp = await client.post(path, data={"csrf": csrf, "password": bad, "password2": bad})
            assert resp.status == 400
            assert expect in await resp.text()
        resp = await client.post(
            path, data={"csrf": csrf, "password": PASSWORD, "password2": PASSWORD + "x"}
        )
        assert "not the same" in await resp.text()
        assert (await h.rows("SELECT password_hash FROM staff"))[0]["password_hash"] is None

        secret = await accept_invite(h, client, token)
        row = (await h.rows("SELECT * FROM staff WHERE email = 'zhou@example.org'"))[0]
        assert row["password_hash"].startswith("$argon2id$")
        assert secret not in row["totp_secret"]  # encrypted at rest
        assert row["telegram_id"] < 0  # no Telegram account: a console-only identity

        # The invitation is used up.
        assert (await client.get(path)).status == 404
        assert await sign_in(h, client, "zhou@example.org", secret) == 303
        inbox = await client.get("/console/")
        assert inbox.status == 200
        assert "No open alerts." in await inbox.text()
    assert await audit_actions(h) == [
        "console_account",
        "console_invite",
        "console_password_set",
        "console_totp_set",
        "console_login",
    ]


async def test_five_wrong_passwords_lock_the_account(harness: Harness) -> None:
    h = harness
    async with console_client(h) as client:
        secret = await accept_invite(h, client, await invite(h, "li@example.org", "investigator"))
        for _ in range(4):
            assert await sign_in(h, client, "li@example.org", secret, password="wrong " * 3) == 401
        assert await sign_in(h, client, "li@example.org", secret, password="wrong " * 3) == 401
        # Locked: the right password and code no longer work.
        csrf = await form_csrf(client, "/console/login")
        from tests.console_support import code_at

        resp = await client.post(
            "/console/login",
            data={
                "csrf": csrf,
                "email": "li@example.org",
                "password": PASSWORD,
                "code": code_at(h, secret),
            },
        )
        assert resp.status == 401
        assert "locked" in await resp.text()
        assert (await client.get("/console/", allow_redirects=False)).status == 303
    actions = await audit_actions(h)
    assert actions.count("console_login_failed") == 5
    assert "console_locked" in actions
    assert actions[-1] == "console_login_refused_locked"
    assert "console_login" not in actions


async def test_a_wrong_or_replayed_code_is_refused(harness: Harness) -> None:
    h = harness
    async with console_client(h) as client:
        secret = await accept_invite(h, client, await invite(h, "wu@example.org", "coordinator"))
        assert await sign_in(h, client, "wu@example.org", secret) == 303
        # The same code again (another browser, same 30 s): refused.
        async with console_client(h) as other:
            assert await sign_in(h, other, "wu@example.org", secret) == 401


async def test_sessions_end_when_idle_too_old_or_signed_out_everywhere(harness: Harness) -> None:
    h = harness
    async with console_client(h) as client:
        secret = await member(h, client, "he@example.org", "coordinator")
        await h.clock.advance(timedelta(minutes=29))
        assert (await client.get("/console/", allow_redirects=False)).status == 200
        await h.clock.advance(timedelta(minutes=31))
        resp = await client.get("/console/", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")

        # 12 hours in all, however active.
        assert await sign_in(h, client, "he@example.org", secret) == 303
        for _ in range(25):
            await h.clock.advance(timedelta(minutes=29))
            if (await client.get("/console/", allow_redirects=False)).status != 200:
                break
        assert (await client.get("/console/", allow_redirects=False)).status == 303

        # Sign out everywhere ends the other browser's session too.
        await h.clock.advance(timedelta(seconds=31))
        assert await sign_in(h, client, "he@example.org", secret) == 303
        async with console_client(h) as other:
            await h.clock.advance(timedelta(seconds=31))
            assert await sign_in(h, other, "he@example.org", secret) == 303
            page = await client.get("/console/")
            resp = await client.post(
                "/console/logout/everywhere",
                data={"csrf": csrf_of(await page.text())},
                allow_redirects=False,
            )
            assert resp.status == 303
            assert (await other.get("/console/", allow_redirects=False)).status == 303
    assert "console_logout_all" in await audit_actions(h)


async def test_a_removed_staff_members_session_ends(harness: Harness) -> None:
    h = harness
    async with console_client(h) as client:
        await member(h, client, "gone@example.org", "coordinator", telegram_id=1009)
        assert (await client.get("/console/", allow_redirects=False)).status == 200
        with contextlib.redirect_stdout(io.StringIO()):
            await cmd_staff(argparse.Namespace(staff_command="remove", telegram_id=1009), h.rt)
        assert (await client.get("/console/", allow_redirects=False)).status == 303
    assert (await audit_actions(h))[-1] == "console_session_ended"


async def test_a_post_without_the_csrf_token_is_refused(harness: Harness) -> None:
    h = harness
    async with console_client(h) as client:
        await member(h, client, "ma@example.org", "coordinator")
        resp = await client.post("/console/logout/everywhere", data={})
        assert resp.status == 403
        assert "did not come from this page" in await resp.text()
        resp = await client.post("/console/logout/everywhere", data={"csrf": "forged"})
        assert resp.status == 403
        # Still signed in: nothing was changed.
        assert (await client.get("/console/", allow_redirects=False)).status == 200
    assert (await audit_actions(h)).count("console_csrf_refused") == 2


async def test_forged_invitation_links_are_refused(harness: Harness) -> None:
    h = harness
    async with console_client(h) as client:
        resp = await client.get("/console/invite/" + "A" * 43)
        assert resp.status == 404
        assert "not valid any more" in await resp.text()
        token = await invite(h, "old@example.org", "coordinator")
        newer = await invite(h, "old2@example.org", "coordinator")
        assert (await client.get(f"/console/invite/{newer}")).status == 200
        # Expired after 72 hours.
        await h.clock.advance(timedelta(hours=73))
        assert (await client.get(f"/console/invite/{token}")).status == 404


async def test_security_headers_on_every_page(harness: Harness) -> None:
    async with console_client(harness) as client:
        resp = await client.get("/console/login")
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Cache-Control"] == "no-store"
        cookie = resp.cookies["diarybot_console_csrf"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"


async def test_cli_invites_by_email(harness: Harness, capsys) -> None:  # type: ignore[no-untyped-def]
    h = harness
    args = argparse.Namespace(
        staff_command="add",
        telegram_id=None,
        email="mon@example.org",
        role="monitor",
        name="Monitor M",
        lang="en",
    )
    assert await cmd_staff(args, h.rt) == 0
    out = capsys.readouterr().out
    assert "/console/invite/" in out
    token = out.rsplit("/console/invite/", 1)[1].strip()
    stored = await h.rows("SELECT token_hash FROM console_invites")
    assert [r["token_hash"] for r in stored] != [token]  # only a hash is stored
    async with console_client(h) as client:
        assert (await client.get(f"/console/invite/{token}")).status == 200


async def test_invitation_is_emailed_when_smtp_is_configured(
    harness: Harness,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from email import message_from_string
    from email.policy import default

    from tests.channels_support import smtp_server

    h = harness
    with smtp_server() as (controller, box):
        monkeypatch.setenv("DIARYBOT_SMTP_URL", f"smtp://127.0.0.1:{controller.port}")
        monkeypatch.setenv("DIARYBOT_PUBLIC_URL", "https://diary.example-hospital.cn")
        args = argparse.Namespace(
            staff_command="add",
            telegram_id=None,
            email="dm@example.org",
            role="monitor",
            name="Data Manager",
            lang="zh_Hans",
        )
        assert await cmd_staff(args, h.rt) == 0
    out = capsys.readouterr().out
    assert "emailed to dm@example.org" in out and "/console/invite/" not in out
    [(_, to, raw)] = box.messages
    assert to == ["dm@example.org"]
    mail = message_from_string(raw, policy=default)
    body = mail.get_body().get_content()  # type: ignore[union-attr]
    assert "研究管理平台" in body or "NCT06438809" in body
    token = body.split("https://diary.example-hospital.cn/console/invite/")[1].split()[0]
    async with console_client(h) as client:
        assert (await client.get(f"/console/invite/{token}")).status == 200
    # Nothing of the link is kept at rest: only its hash, and no outbox row.
    assert await h.rows("SELECT * FROM outbox WHERE channel = 'email'") == []


async def test_a_post_from_an_expired_session_is_refused_and_changes_nothing(
    harness: Harness,
) -> None:
    h = harness
    await h.patient(501, "RP-001", lang="en")
    async with console_client(h) as client:
        await member(h, client, "he@example.org", "coordinator")
        csrf = await form_csrf(client, "/console/patients/RP-001/manage")
        await h.clock.advance(timedelta(minutes=31))  # the form sat open past the idle limit
        resp = await client.post(
            "/console/patients/RP-001/manage",
            data={"csrf": csrf, "action": "pause", "reason": "in hospital"},
            allow_redirects=False,
        )
        assert resp.status == 403
        assert "This form has expired" in await resp.text()  # a clear answer, not a crash
    [p] = await h.rows("SELECT status FROM patients")
    assert p["status"] == "active"
    assert await h.rows("SELECT * FROM audit WHERE action = 'pause'") == []
    [ended] = await h.rows("SELECT new_value FROM audit WHERE action = 'console_session_ended'")
    assert json.loads(ended["new_value"]) == {"reason": "expired"}
    assert (await audit_actions(h))[-2:] == ["console_session_ended", "console_csrf_refused"]
