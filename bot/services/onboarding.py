"""What enrolling on either channel shares, below both (bot.services.enrolment: Telegram codes;
bot.web.links: the web diary's personal links): the refusal, a one-time code with its t.me
link, and a new patient's diaries planned from today.

A refusal (bot.i18n.Refusal) carries one reason in two forms: `str(exc)`, the English line the
command line prints, and `exc.text(_)`, the msgid in a person's language (console, Telegram).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import aiosqlite

from bot.domain.schedule import diary_occurrences
from bot.i18n import N_, Refusal
from bot.services import codes
from bot.services.runtime import Runtime
from storage import keys, repo


class EnrolError(Refusal):
    """Refused enrolment, code, link or channel change; nothing was written."""


# A patient who left the study gets no new code, link or channel (msgids shared with
# bot.followup.lifecycle's refusals).
FINISHED = {
    "withdrawn": N_("{subject} has withdrawn from the diary."),
    "completed": N_("{subject} has already completed the follow-up."),
}
NO_PATIENT = N_("There is no patient {subject}.")


def deep_link(username: str | None, code: str) -> str | None:
    """The t.me link that opens the bot with the code, or None when the bot's name is unknown."""
    return f"https://t.me/{username}?start={code}" if username else None


async def issue_code(
    rt: Runtime, conn: aiosqlite.Connection, patient_id: int, now: datetime
) -> str:
    """A fresh one-time code for the patient, stored only as its keyed hash; returns the code."""
    code = codes.new_code()
    expires = now + timedelta(hours=rt.study.code_valid_hours)
    hashed = codes.code_hash(code, keys.for_conn(conn))
    await repo.insert_code(conn, hashed, patient_id, expires, now)
    return code


async def materialize(
    rt: Runtime, conn: aiosqlite.Connection, patient: repo.Patient, now: datetime
) -> None:
    """Create the patient's diary occurrences from today on (none already closed)."""
    occs = diary_occurrences(
        rt.study,
        patient.injection_date,
        patient.timezone,
        patient.prompt_time,
        enrolled_on=rt.local_today(patient.timezone),
    )
    await repo.insert_occurrences(conn, patient.id, [o for o in occs if o.closes_at > now])
