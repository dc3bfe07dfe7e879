"""Which approved safety text a patient was shown, and when: one audit entry per showing.

The safety text is ethics-approved wording from the study file (`[safety]`, per language, with
a `version`); it may be revised and re-approved mid-study. So that a monitor can tell from the
record which wording a patient saw, every showing leaves a `safety_text_shown` entry in the
transaction that shows it (the answer's step that queues the chat message or the SMS, the web
page's view):

    new = {"safety_text_version": "2026-11-30 v2", "lang": "zh_Hans",
           "channel": "telegram" | "sms" | "web", "moment": "answer" | "submit",
           "alerts": [urgent alert ids on this diary], "sms_template": code (SMS only)}

`entity` is the diary's key; `lang` is the language of the text actually shown (the study's
first language when it has no text in the patient's).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiosqlite

from bot.domain.study import Study
from storage import alerts as store
from storage import audit, repo

SHOWN = "safety_text_shown"
CHANNELS = ("telegram", "sms", "web")
MOMENTS = ("answer", "submit")  # at an urgent answer before Submit; with the thank-you


async def record_shown(
    conn: aiosqlite.Connection,
    now: datetime,
    study: Study,
    patient: repo.Patient,
    occ: repo.OccRow,
    locale: str,
    *,
    channel: str,
    moment: str,
) -> None:
    """Audit one showing of the safety text (call in the transaction that shows it)."""
    assert channel in CHANNELS and moment in MOMENTS, (channel, moment)
    lang = study.safety.language(locale)
    new: dict[str, Any] = {
        "safety_text_version": study.safety.version,
        "lang": lang,
        "channel": channel,
        "moment": moment,
        "alerts": [a.id for a in await store.diary_alerts(conn, occ.id, "urgent")],
    }
    if channel == "sms" and study.sms is not None:
        template = study.sms.get("safety", lang)
        if template is not None:  # what Aliyun / Tencent send instead of the text itself
            new["sms_template"] = template.code
    await audit.record(conn, now, "system", SHOWN, subject=patient.subject, entity=occ.key, new=new)
