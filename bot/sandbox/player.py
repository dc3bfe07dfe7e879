"""Play a patient filling in the open diary through the chat, as a person would.

The demo seed uses this to give its patients a history that is real in every way: each answer
is a tap on a button the bot sent (or a typed reply), handled by the bot's own handlers, so the
chats, the answers table, the audit trail and any alert look exactly like a patient's.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.sandbox.world import Sandbox, SandboxError
from conversations.callbacks import make
from storage import repo

#: A diary has at most a dozen questions; a loop longer than this is a bug, not a diary.
MAX_STEPS = 60


def _message_with(sb: Sandbox, chat_id: int, data: str) -> int | None:
    """The newest message in the chat that carries a button with exactly this data."""
    for message in reversed(sb.api.messages(chat_id)):
        if message.deleted:
            continue
        if any(d == data for _, d in message.flat_buttons):
            return message.message_id
    return None


def _start_button(sb: Sandbox, chat_id: int, occ_id: int) -> int | None:
    return _message_with(sb, chat_id, make("d", "s", occ_id))


async def fill_diary(sb: Sandbox, user_id: int, answers: Mapping[str, str]) -> int:
    """Open the patient's current diary from its prompt, answer it, submit it.

    `answers` maps item codes to stored values (option code, number, "ER,MED" for several);
    items the diary does not ask are ignored. Returns the occurrence id that was submitted.
    """
    db = sb.bot.rt.db
    patient = await repo.patient_by_user(db.conn, user_id)
    if patient is None or patient.chat_id is None:
        raise SandboxError(f"user {user_id} is not a linked patient")
    chat = patient.chat_id
    occ = await repo.open_occurrence(db.conn, patient.id, sb.now)
    if occ is None:
        raise SandboxError(f"{patient.subject}: no diary is open at {sb.now.isoformat()}")
    prompt = _start_button(sb, chat, occ.id)
    if prompt is not None:
        await sb.press(user_id, prompt, make("d", "s", occ.id))
    else:  # no prompt in this chat (yet): the /diary command opens the same diary
        await sb.send_text(user_id, "/diary")
    for _ in range(MAX_STEPS):
        row = await db.fetchone(
            "SELECT occurrence_id, item FROM diary_sessions WHERE patient_id = ?", (patient.id,)
        )
        if row is None or row["occurrence_id"] != occ.id:
            return occ.id  # submitted: the session is gone
        item_code = row["item"]
        if item_code is None:
            await _tap(sb, user_id, chat, make("d", "x", occ.id))
            continue
        item = sb.study.item(item_code)
        if item_code not in answers:
            raise SandboxError(f"{patient.subject}: no answer planned for {item_code}")
        value = answers[item_code]
        if item.kind in ("single", "scale", "count"):
            await _tap(sb, user_id, chat, make("d", "a", occ.id, item.code, value))
        elif item.kind == "multi":
            for code in value.split(","):
                await _tap(sb, user_id, chat, make("d", "t", occ.id, item.code, code))
            await _tap(sb, user_id, chat, make("d", "n", occ.id, item.code))
        else:
            await sb.send_text(user_id, value)
    raise SandboxError(f"{patient.subject}: the diary did not finish in {MAX_STEPS} steps")


async def _tap(sb: Sandbox, user_id: int, chat: int, data: str) -> None:
    message_id = _message_with(sb, chat, data)
    if message_id is None:
        raise SandboxError(f"no button {data!r} in chat {chat}")
    await sb.press(user_id, message_id, data)


async def tap_language(sb: Sandbox, user_id: int, locale: str) -> None:
    """Answer the language question /start asks when the study team left it open."""
    data = make("l", "set", locale)
    await _tap(sb, user_id, user_id, data)
