"""The demo study: a handful of patients at different study days, a history, one open alert.

Seeding plays the story through the running bot, starting some days before "today": the study
team is registered, each patient sends their enrolment code from their (simulated) phone, the
clock walks day by day through every prompt, reminder and closed window, and the patients tap
through their diaries when the story says they do. Because nothing is written behind the bot's
back, the chats, the audit trail, missed diaries and alerts are all the bot's own work.

The people:
- RP-001 (zh) on Day 2 after the injection: baseline and acute-phase daily diaries, one missed.
- RP-002 (en) on Day 30: two diaries missed in a row (a third tomorrow tells the team); chose
  the language at /start.
- RP-003 (zh) in the weekly phase: reports dripping blood in this week's diary minutes before
  "now", so an urgent alert is open.
- RP-004 (en) in the baseline week, prompted at 08:00.
- RP-W01 (zh) on the web diary (no Telegram): enrolled this morning with a phone number and a
  year of birth; the personal link came by SMS, and the evening prompt will too.
- Staff: a Chinese-speaking and an English-speaking coordinator, a Chinese-speaking
  investigator, and the study-team group chat.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.domain.schedule import local_to_utc
from bot.domain.study import Study
from bot.sandbox.player import fill_diary, tap_language
from bot.sandbox.world import Sandbox

Answers = dict[str, str]


@dataclass(frozen=True)
class DemoPatient:
    subject: str
    user_id: int
    lang: str | None  # None: the patient picks a language at /start
    client_lang: str  # the phone's language
    injection_day_offset: int  # injection date = today + this
    prompt: time
    #: Days relative to today (-1 = yesterday) on which the diary is filled in, with the minute
    #: after the prompt it happens. Days without an entry are missed.
    filled: dict[int, int]


@dataclass(frozen=True)
class DemoStaff:
    telegram_id: int
    role: str
    name: str
    lang: str


STAFF = (
    DemoStaff(1001, "coordinator", "李伟", "zh_Hans"),
    DemoStaff(1002, "coordinator", "Anna Smith", "en"),
    DemoStaff(1003, "investigator", "王芳", "zh_Hans"),
)
STAFF_GROUP = -1001000000001

PATIENTS = (
    DemoPatient(
        "RP-001",
        501,
        "zh_Hans",
        "zh-hans",
        -2,
        time(20, 0),
        {-9: 12, -8: 25, -7: 8, -6: 40, -4: 15, -3: 22, -2: 5, -1: 31},
    ),
    DemoPatient(
        "RP-002", 502, None, "en", -30, time(20, 0), {-9: 18, -7: 10, -6: 45, -5: 20, -4: 33, -3: 9}
    ),
    DemoPatient("RP-003", 503, "zh_Hans", "zh-hans", -99, time(21, 0), {-8: 14}),
    DemoPatient("RP-004", 504, "en", "en", 3, time(8, 0), {-4: 20, -3: 35, -2: 11, -1: 27, 0: 16}),
)


@dataclass(frozen=True)
class DemoWebPatient:
    subject: str
    lang: str
    injection_day_offset: int
    prompt: time
    phone: str
    birth_year: int
    enrolled_at: time  # today, study time


WEB_PATIENT = DemoWebPatient(
    "RP-W01", "zh_Hans", 5, time(20, 0), "+8613900001234", 1956, time(10, 0)
)
#: The urgent report that leaves one alert open: this week's diary of RP-003, just before now.
ALERT_SUBJECT = "RP-003"
ALERT_ANSWERS: Answers = {
    "BLEED": "3",
    "BLEED_FAINT": "N",
    "URGENCY": "2",
    "LEAK": "0",
    "PAIN": "4",
    "BM": "4",
    "TENESMUS": "1",
    "BLEED_DAYS": "2",
    "BM_USUAL": "3",
    "FEVER": "N",
    "MUCUS": "0",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}
#: "Now" when the seed is done: half an hour before the evening prompts.
NOW_AT = time(19, 30)
ALERT_AT = time(19, 25)
HISTORY_DAYS = 9


def everyday_answers(rng: random.Random) -> Answers:
    """A stable, unremarkable day: nothing any escalation rule would flag."""
    return {
        "BLEED": rng.choice(["0", "1", "1"]),
        "URGENCY": rng.choice(["1", "1", "2"]),
        "LEAK": "0",
        "PAIN": str(rng.choice([1, 2, 2, 3])),
        "BM": str(rng.choice([2, 3, 3])),
        "TENESMUS": rng.choice(["0", "1"]),
        "FEVER": "N",
        "BLEED_DAYS": "1",
        "BM_USUAL": "2",
        "MUCUS": "0",
        "COMPL": "NONE",
        "EVENTS": "NONE",
        "OTHER": "N",
    }


def today_in_study(study: Study, when: datetime) -> date:
    return when.astimezone(ZoneInfo(study.timezone)).date()


def seed_start(study: Study, today: date) -> datetime:
    """Where the story starts: just after noon of the first history day (the study's zone),
    when the previous evening's diaries have closed."""
    return local_to_utc(today - timedelta(days=HISTORY_DAYS), time(12, 30), study.timezone)


async def seed(sb: Sandbox, today: date) -> None:
    """Play the demo story on a started sandbox whose clock stands at `seed_start(today)`."""
    tz = sb.study.timezone
    for s in STAFF:
        await sb.add_staff(s.telegram_id, s.role, s.name, s.lang)
    await sb.set_staff_group(STAFF_GROUP)

    for p in PATIENTS:
        invite = await sb.enroll(
            p.subject,
            today + timedelta(days=p.injection_day_offset),
            p.lang,
            p.prompt,
            user_id=p.user_id,
            client_lang=p.client_lang,
        )
        await sb.send_text(p.user_id, f"/start {invite.code}")
        if p.lang is None:  # the language question: tap the phone's language
            await tap_language(sb, p.user_id, "en" if p.client_lang == "en" else "zh_Hans")

    plan: list[tuple[datetime, DemoPatient, Answers]] = []
    for p in PATIENTS:
        rng = random.Random(p.subject)
        for day, minutes in sorted(p.filled.items()):
            at = local_to_utc(today + timedelta(days=day), p.prompt, tz)
            plan.append((at + timedelta(minutes=minutes), p, everyday_answers(rng)))
    alert_patient = next(p for p in PATIENTS if p.subject == ALERT_SUBJECT)
    plan.append((local_to_utc(today, ALERT_AT, tz), alert_patient, ALERT_ANSWERS))
    plan.sort(key=lambda entry: (entry[0], entry[1].subject))

    w = WEB_PATIENT
    enrol_web_at: datetime | None = local_to_utc(today, w.enrolled_at, tz)
    for at, p, answers in plan:
        if enrol_web_at is not None and at > enrol_web_at:
            await _enrol_web_patient(sb, today, enrol_web_at)
            enrol_web_at = None
        if at > sb.now:
            await sb.travel_to(at)
        await fill_diary(sb, p.user_id, answers)
    if enrol_web_at is not None:
        await _enrol_web_patient(sb, today, enrol_web_at)
    await sb.travel_to(local_to_utc(today, NOW_AT, tz))


async def _enrol_web_patient(sb: Sandbox, today: date, at: datetime) -> None:
    if at > sb.now:
        await sb.travel_to(at)
    w = WEB_PATIENT
    await sb.enroll_web(
        w.subject,
        today + timedelta(days=w.injection_day_offset),
        w.lang,
        w.prompt,
        w.phone,
        w.birth_year,
    )


def default_today(study: Study) -> date:
    """Today's date in the study's time zone (the sandbox's story ends this evening)."""
    return today_in_study(study, datetime.now(UTC))
