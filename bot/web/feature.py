"""The web diary in Telegram: a staff member who enrols a web patient gets the link and its QR.

`/enroll RP-004 2026-12-10 zh web +8613812345678 1956` (bot/escalation/staff_commands.py)
enrols on the web channel; the reply is the personal link and a QR code picture to show the
patient (it is sent to the staff member's own chat only).
"""

from __future__ import annotations

from datetime import date

from bot import messenger
from bot.i18n import T
from bot.services.runtime import Runtime
from bot.web import links


async def send_link(
    rt: Runtime, chat_id: int, _: T, subject: str, injection: date, url: str
) -> None:
    text = "\n".join(
        [
            _("{subject} enrolled; Day 0 is {date}.", subject=subject, date=_.date(injection)),
            _("Web diary link (personal: give it only to the patient): {link}", link=url),
        ]
    )
    now = rt.now()
    async with rt.db.transaction() as conn:
        await messenger.enqueue(conn, now, chat_id, text)
        await messenger.enqueue_file(
            conn,
            now,
            chat_id,
            f"{subject}-link.png",
            links.qr_png(url),
            caption=_("QR code of {subject}'s web diary link", subject=subject),
            photo=True,
        )
    rt.wake_sender()
