"""The sandbox page's JSON API and the screens registry, over real HTTP (aiohttp test client)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from babel.messages.pofile import read_po

from bot.domain import questionnaire as q
from bot.domain.study import Study
from bot.i18n import LOCALE_DIR, t
from bot.sandbox import replies
from bot.sandbox import screens as screens_mod
from bot.sandbox.web import make_app
from bot.sandbox.world import Sandbox
from bot.web.server import WebConfig, security_headers_for
from tests.sandbox_support import T0, started
from tests.web_support import browser

PAGE_PORT = 8080  # the sandbox page's port: the only page allowed to frame the web diary


@pytest.fixture
async def sb(tmp_path: Path, study: Study) -> AsyncIterator[Sandbox]:
    async for s in started(tmp_path / "sandbox.sqlite3", study, page_port=PAGE_PORT):
        await s.add_staff(1002, "coordinator", "Anna Smith", "en")
        yield s


@pytest.fixture
async def client(sb: Sandbox) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(sb))) as c:
        yield c


async def _json(response: Any, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def _enrol(client: TestClient, subject: str = "RP-301", lang: str = "en") -> Any:
    return await _json(
        await client.post(
            "/api/enroll",
            json={
                "subject": subject,
                "injection_date": "2026-12-01",
                "lang": lang,
                "prompt_time": "20:00",
            },
        )
    )


async def test_state_clock_and_people(client: TestClient, sb: Sandbox) -> None:
    state = await _json(await client.get("/api/state"))
    assert state["now_local"] == "2026-11-30 19:00"
    assert state["timezone"] == "Asia/Shanghai"
    assert state["ready"] is True and state["busy"] is False
    assert state["next"] is None
    assert state["staff"] == [
        {"user_id": 1002, "role": "coordinator", "name": "Anna Smith", "lang": "en"}
    ]
    assert state["patients"] == []


async def test_enrol_link_and_move_the_clock(client: TestClient, sb: Sandbox) -> None:
    invite = await _enrol(client)
    state = await _json(await client.get("/api/state"))
    [patient] = state["patients"]
    assert (patient["subject"], patient["status"], patient["code"]) == (
        "RP-301",
        "invited",
        invite["code"],
    )
    await _json(
        await client.post(
            "/api/send", json={"user_id": invite["user_id"], "text": f"/start {invite['code']}"}
        )
    )
    state = await _json(await client.get("/api/state", params={"patient": invite["user_id"]}))
    chat = state["chats"][str(invite["user_id"])]
    assert chat[0]["from"] == "user" and chat[0]["text"].startswith("/start")
    assert "RP-301" in chat[-1]["text"]
    assert state["patients"][0]["code"] is None  # used: no longer shown
    assert state["next"] == {"at_local": "2026-11-30 20:00", "kind": "prompt", "subject": "RP-301"}

    await _json(await client.post("/api/clock", json={"action": "next"}))
    state = await _json(await client.get("/api/state", params={"patient": invite["user_id"]}))
    assert state["now_local"] == "2026-11-30 20:00"
    prompt = state["chats"][str(invite["user_id"])][-1]
    assert prompt["at"] == "2026-11-30 20:00"
    [[start]] = prompt["buttons"]
    assert start["data"].startswith("d:s:")

    await _json(
        await client.post(
            "/api/press",
            json={"user_id": invite["user_id"], "message_id": prompt["id"], "data": start["data"]},
        )
    )
    state = await _json(await client.get("/api/state", params={"patient": invite["user_id"]}))
    assert "Question 1 of" in state["chats"][str(invite["user_id"])][-1]["text"]

    await _json(await client.post("/api/clock", json={"action": "hour"}))
    await _json(await client.post("/api/clock", json={"action": "day"}))
    state = await _json(await client.get("/api/state"))
    assert state["now_local"] == "2026-12-01 21:00"


async def test_a_refused_button_shows_its_answer(client: TestClient, sb: Sandbox) -> None:
    invite = await _enrol(client)
    await client.post(
        "/api/send", json={"user_id": invite["user_id"], "text": f"/start {invite['code']}"}
    )
    state = await _json(await client.get("/api/state", params={"patient": invite["user_id"]}))
    welcome = state["chats"][str(invite["user_id"])][-1]
    await _json(
        await client.post(
            "/api/press",
            json={"user_id": invite["user_id"], "message_id": welcome["id"], "data": "d:x:999"},
        )
    )
    state = await _json(await client.get("/api/state", params={"patient": invite["user_id"]}))
    [toast] = state["toasts"][str(invite["user_id"])]
    assert toast["alert"] is True and toast["text"] == "This is not available."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"subject": "", "injection_date": "2026-12-01"}, "subject ID is required"),
        ({"subject": "RP 1", "injection_date": "2026-12-01"}, "bad subject ID"),
        ({"subject": "RP-1", "injection_date": "1 Dec"}, "injection date"),
        ({"subject": "RP-1", "injection_date": "2026-12-01", "lang": "fr"}, "language"),
        ({"subject": "RP-1", "injection_date": "2026-12-01", "prompt_time": "25:00"}, "prompt"),
    ],
)
async def test_bad_enrolment_input_is_refused(
    client: TestClient,
    sb: Sandbox,
    body: dict[str, str],
    message: str,
) -> None:
    answer = await _json(await client.post("/api/enroll", json=body), 400)
    assert message in answer["error"]
    assert await sb.bot.rt.db.scalar("SELECT COUNT(*) FROM patients") == 0


async def test_bad_actions_are_refused_and_change_nothing(
    client: TestClient,
    sb: Sandbox,
) -> None:
    before = len(sb.api.state.user_messages)
    for path, body in [
        ("/api/send", {"user_id": 4242, "text": "hi"}),
        ("/api/send", {"user_id": 1002, "text": "   "}),
        ("/api/send", {"user_id": "x", "text": "hi"}),
        ("/api/press", {"user_id": 1002, "message_id": 1, "data": ""}),
        ("/api/clock", {"action": "week"}),
        ("/api/clock", {"action": "next"}),  # nobody to prompt
        ("/api/language", {"user_id": 1002, "role": "staff", "lang": "fr"}),
    ]:
        answer = await _json(await client.post(path, json=body), 400)
        assert answer["error"]
    answer = await _json(await client.post("/api/send", data="not json"), 400)
    assert "JSON" in answer["error"]
    assert len(sb.api.state.user_messages) == before
    assert sb.now == T0


async def test_cross_site_posts_and_posts_before_ready_are_refused(
    client: TestClient,
    sb: Sandbox,
) -> None:
    answer = await _json(
        await client.post(
            "/api/clock", json={"action": "hour"}, headers={"Origin": "http://evil.example"}
        ),
        403,
    )
    assert "cross-site" in answer["error"]
    sb.ready = False
    await _json(await client.post("/api/clock", json={"action": "hour"}), 503)
    assert sb.now == T0
    assert (await _json(await client.get("/api/state")))["ready"] is False


async def test_language_endpoint(client: TestClient, sb: Sandbox) -> None:
    await _json(
        await client.post("/api/language", json={"user_id": 1002, "role": "staff", "lang": "zh"})
    )
    assert await sb.bot.rt.db.scalar("SELECT lang FROM staff WHERE telegram_id = 1002") == "zh_Hans"
    invite = await _enrol(client, lang="ask")
    await _json(
        await client.post(
            "/api/language", json={"user_id": invite["user_id"], "role": "patient", "lang": "en"}
        )
    )
    assert sb.clients[invite["user_id"]] == "en"


async def test_pages_and_static_files(client: TestClient) -> None:
    for path, needle in [
        ("/", "patient-select"),
        ("/screens", "every screen"),
        ("/static/app.js", "/api/state"),
        ("/static/tg.js", "richText"),
        ("/static/style.css", ".bubble"),
    ]:
        response = await client.get(path)
        assert response.status == 200, path
        assert needle in await response.text()
    for path in ("/static/nope.js", "/static/..%2Fweb.py", "/static/screens.html", "/api/file/x"):
        assert (await client.get(path)).status == 404, path


async def test_screens_cover_every_question_in_both_languages(
    client: TestClient,
    study: Study,
) -> None:
    body = await _json(await client.get("/api/screens"))
    screens = body["screens"]
    assert [s for s in screens if "error" in s] == []
    keys = [s["key"] for s in screens]
    assert len(keys) == len(set(keys))
    samples = screens_mod.make_samples(study)
    assert samples.weekly is not None
    daily = q.applicable_items(study, samples.daily.study_day, samples.answers)
    full = {it.code: screens_mod.sample_value(study, it) for it in study.items}
    weekly = q.applicable_items(study, samples.weekly.study_day, full)
    # Every item is asked on the sample daily diary, or (weekly-only items) the weekly one.
    assert {it.code for it in study.items} == {it.code for it in [*daily, *weekly]}
    for item in daily:
        assert f"diary.question.{item.code}" in keys
    for item in weekly:
        if item not in daily:
            assert f"diary.question.{item.code}.weekly" in keys
    by_key = {s["key"]: s for s in screens}
    bleed = by_key["diary.question.BLEED"]
    assert "bleeding" in bleed["en"]["text"]
    assert bleed["zh_Hans"]["text"] != bleed["en"]["text"]
    assert [b["data"] for row in bleed["en"]["buttons"] for b in row] == [
        b["data"] for row in bleed["zh_Hans"]["buttons"] for b in row
    ]
    for key in ("diary.review", "diary.reminder", "start.welcome", "settings.menu", "staff.help"):
        assert key in by_key
    for code in ("not_a_number", "too_long", "choose_one", "use_buttons_review"):
        assert f"diary.error.{code}" in by_key
    assert "start.help" in by_key
    # The features' screens are on the page too (their own providers and follow-up's here).
    for prefix in ("escalation.", "followup.schedule", "followup.digest.", "followup.closing"):
        assert any(k.startswith(prefix) for k in keys), prefix
    # Replies written inside handlers, captured from a scratch bot in both languages.
    for step in replies.SCRIPT:
        if step.key is not None:
            assert f"replies.{step.key}" in by_key, step.key
    assert "not right" in by_key["replies.code.wrong"]["en"]["text"]
    assert "not right" not in by_key["replies.code.wrong"]["zh_Hans"]["text"]
    assert "pop-up" in by_key["replies.button.refused"]["when"]
    texts = [s[loc]["text"] for s in screens for loc in ("en", "zh_Hans")]
    assert not [t for t in texts if t.startswith("(no reply")]
    # Cached: the second request does not play the script again.
    assert (await _json(await client.get("/api/screens")))["screens"] == screens


def test_a_broken_screen_is_listed_with_its_error(study: Study) -> None:
    def broken(samples: screens_mod.Samples) -> list[screens_mod.Screen]:
        return [screens_mod.Screen("x.broken", "Test", "never", lambda _: 1 / 0)]  # type: ignore[arg-type, return-value]

    [entry] = screens_mod.render_all(study, only=[broken])
    assert entry["key"] == "x.broken" and "ZeroDivisionError" in entry["error"]


def _pot_msgids() -> list[str | tuple[str, ...] | list[str]]:
    with (LOCALE_DIR / "messages.pot").open("rb") as fp:
        return [m.id for m in read_po(fp) if m.id]


def _appears(msgid: str, strings: list[str]) -> bool:
    """The msgid's literal pieces (the text between its {placeholders}) occur in this order on
    one line of one of `strings`."""
    pieces = re.split(r"\{\w*\}", msgid)
    pattern = re.compile(".*?".join(re.escape(piece) for piece in pieces))
    return any(pattern.search(s) for s in strings)


async def test_screens_show_every_msgid_of_the_catalog(
    client: TestClient,
) -> None:
    """Every msgid of locales/messages.pot is on the screens page, in both languages.

    A msgid counts as shown when
    - a drawn screen (any group but "Other texts") shows it in English: the msgid's literal
      pieces, with each {placeholder} matching whatever text was filled in, occur in order on
      one line of the screen's English text or of one of its English button labels — so
      "Day {day}" is shown by "Day 5 · …"; or
    - the "Other texts" section (the last one) has an entry for it (its `msgid`), with the
      translations filled in for zh_Hans and en.
    For a plural entry either form may be shown. The page's own rule for leaving a msgid out of
    "Other texts" is stricter (the zh_Hans translation must be on the same screen too), so the
    section may also list a few msgids whose English happens to occur inside a longer text.
    """
    screens = (await _json(await client.get("/api/screens")))["screens"]
    other = {s["msgid"]: s for s in screens if s["group"] == screens_mod.OTHER_GROUP}
    assert screens[-1]["group"] == screens_mod.OTHER_GROUP
    drawn = [s for s in screens if s["group"] != screens_mod.OTHER_GROUP and "error" not in s]
    english = [
        text
        for s in drawn
        for text in [s["en"]["text"], *(b["text"] for row in s["en"]["buttons"] for b in row)]
    ]
    missing = []
    for msgid in _pot_msgids():
        forms = (msgid,) if isinstance(msgid, str) else tuple(msgid)
        if forms[0] in other:
            entry = other[forms[0]]
            assert entry["zh_Hans"]["text"] and entry["en"]["text"], forms[0]
            continue
        if not any(_appears(form, english) for form in forms):
            missing.append(forms[0])
    assert not missing, f"{len(missing)} msgids are not on the screens page: {missing[:10]}"
    # Other texts shows the translations themselves, placeholders visible.
    zh = t("zh_Hans")
    for msgid, entry in other.items():
        assert entry["zh_Hans"]["text"] == zh(msgid), msgid
    # The texts users see are drawn as real screens, not only listed at the end.
    by_key = {s["key"]: s for s in screens}
    for needle, prefix in [
        ("Pain 8 or more", "escalation.rule."),
        ("Month 12 visit", "followup.visit_reminder."),
        ("Your last diary was missed.", "followup.schedule."),
        ("What is wrong in this diary?", "replies.mistake."),
        ("Acknowledged.", "replies.alert."),
        ("Please acknowledge the alert first.", "replies.alert."),
        ("Withdraw RP-USE from the diary?", "replies.staff.withdraw"),
        ("Fill in today's diary", "replies.command.menu"),
    ]:
        assert any(k.startswith(prefix) and needle in s["en"]["text"] for k, s in by_key.items()), (
            needle
        )


def test_other_texts_lists_the_whole_catalog_when_nothing_is_drawn() -> None:
    msgids = _pot_msgids()
    other = screens_mod.other_texts([])
    assert len(other) == len(msgids)
    assert len({e["key"] for e in other}) == len(other)
    for entry in other[:5]:
        assert entry["group"] == screens_mod.OTHER_GROUP
        assert entry["zh_Hans"]["text"] == t("zh_Hans")(entry["msgid"])
        assert entry["en"]["text"] == t("en")(entry["msgid"])


async def test_the_web_patient_phone_sms_inbox_and_diary(client: TestClient, sb: Sandbox) -> None:
    """A web patient next to the Telegram ones: the SMS the bot sends them (the personal link,
    then the prompt the clock brings) in their phone's inbox, and the web diary the link opens,
    served by the sandbox on the same clock."""
    link = await sb.enroll_web(
        "RP-W09", date(2026, 12, 1), "zh_Hans", time(20, 0), "+8613900009999", 1956
    )
    state = await _json(await client.get("/api/state"))
    [patient] = state["patients"]
    assert (patient["subject"], patient["channel"], patient["status"]) == (
        "RP-W09",
        "web",
        "active",
    )
    assert (patient["phone"], patient["birth_year"], patient["user_id"]) == (
        "+8613900009999",
        1956,
        None,
    )
    assert state["web_port"] == sb.web_port
    assert state["next"] == {"at_local": "2026-11-30 20:00", "kind": "prompt", "subject": "RP-W09"}

    inbox = await _json(await client.get("/api/sms", params={"subject": "RP-W09"}))
    assert (inbox["phone"], inbox["birth_year"], inbox["web_port"]) == (
        "+8613900009999",
        1956,
        sb.web_port,
    )
    [sms] = inbox["messages"]
    assert (sms["purpose"], sms["at"]) == ("web_link", "2026-11-30 19:00")
    assert "研究日记专属链接" in sms["text"] and link in sms["text"]
    [opened] = sms["links"]
    assert opened["url"] == link and opened["path"] == link[link.index("/p/") :]

    # The clock moves the web patient too: the prompt comes by SMS at 20:00.
    await _json(await client.post("/api/clock", json={"action": "next"}))
    inbox = await _json(await client.get("/api/sms", params={"subject": "RP-W09"}))
    prompt = inbox["messages"][-1]
    assert (prompt["purpose"], prompt["at"]) == ("prompt", "2026-11-30 20:00")
    assert "今天的研究日记可以填写了" in prompt["text"]
    assert [x["path"] for x in prompt["links"]] == ["/"]

    # The link opens the diary: the year of birth on a new phone, then today's first question.
    diary = f"http://127.0.0.1:{sb.web_port}"
    async with browser() as b:
        page = await b.get(diary + opened["path"])
        assert page.status == 200 and "出生年份" in page.plain
        page = await b.post(diary + opened["path"] + "/year", {"year": "1956"})
        assert page.status == 200 and "第1题" in page.plain, page.plain
        page = await b.get(diary + "/")  # the address in the prompt SMS, on this phone
        assert page.status == 200 and "第1题" in page.plain, page.plain


async def test_only_the_sandbox_page_may_frame_the_web_diary(sb: Sandbox) -> None:
    """The web diary forbids framing (CSP frame-ancestors 'none', X-Frame-Options DENY), except
    in the sandbox, whose page (its own origin only) shows it in the phone frame."""
    async with browser() as b:
        async with b.session.get(f"http://127.0.0.1:{sb.web_port}/") as r:
            csp = r.headers["Content-Security-Policy"]
            assert "X-Frame-Options" not in r.headers
    assert "frame-ancestors http://127.0.0.1:8080 http://localhost:8080;" in csp
    assert "default-src 'self'" in csp and "'none'" in csp  # the rest stays as strict
    production = security_headers_for(WebConfig())
    assert "frame-ancestors 'none'" in production["Content-Security-Policy"]
    assert production["X-Frame-Options"] == "DENY"
    for origin in ("https://example.com", "http://10.0.0.5:8080", "*", "http://127.0.0.1:8080/x"):
        with pytest.raises(ValueError, match="loopback"):
            WebConfig(frame_ancestors=(origin,))


@pytest.mark.parametrize("subject", ["", "RP-NONE", "RP-301"])
async def test_the_sms_inbox_of_a_patient_who_is_not_on_the_web_is_refused(
    client: TestClient, subject: str
) -> None:
    await _enrol(client)  # RP-301: a Telegram patient
    answer = await _json(await client.get("/api/sms", params={"subject": subject}), 400)
    assert answer == {"error": "no such web patient"}


async def test_enrol_a_web_patient_from_the_page(client: TestClient, sb: Sandbox) -> None:
    answer = await _json(
        await client.post(
            "/api/enroll",
            json={
                "channel": "web",
                "subject": "RP-W02",
                "injection_date": "2026-12-01",
                "lang": "en",
                "prompt_time": "20:00",
                "phone": "+8613900002222",
                "birth_year": "1950",
            },
        )
    )
    assert sb.web is not None
    assert answer["channel"] == "web" and answer["link"].startswith(f"http://{sb.web.bound}/p/")
    inbox = await _json(await client.get("/api/sms", params={"subject": "RP-W02"}))
    [sms] = inbox["messages"]
    assert sms["purpose"] == "web_link" and sms["text"].startswith("Your personal study diary link")


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"phone": "13900002222"}, "bad phone number"),
        ({"birth_year": "2020"}, "bad year of birth"),
        ({"birth_year": "nineteen"}, "year of birth must be a number"),
        ({"channel": "wechat"}, "channel: telegram or web"),
    ],
)
async def test_bad_web_enrolment_is_refused_and_changes_nothing(
    client: TestClient, sb: Sandbox, extra: dict[str, str], error: str
) -> None:
    body = {
        "channel": "web",
        "subject": "RP-W03",
        "injection_date": "2026-12-01",
        "lang": "zh",
        "phone": "+8613900003333",
        "birth_year": "1956",
        **extra,
    }
    answer = await _json(await client.post("/api/enroll", json=body), 400)
    assert error in answer["error"]
    state = await _json(await client.get("/api/state"))
    assert state["patients"] == [] and sb.sms.inbox == []
