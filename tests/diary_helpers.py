"""Tapping through a diary in tests."""

from __future__ import annotations

from tests.harness import Player

# A quiet diary, by option code / typed value.
QUIET = {
    "BLEED": "0",
    "URGENCY": "1",
    "LEAK": "0",
    "PAIN": "2",
    "BM": "2",
    "TENESMUS": "0",
    "FEVER": "N",
    "MUCUS": "0",
    "BM_USUAL": "2",
    "COMPL": "NONE",
    "EVENTS": "NONE",
    "OTHER": "N",
}

MULTI = ("COMPL", "EVENTS")
"""Multi-select items: answered by toggling each code, then Done."""


def current_item(p: Player) -> str | None:
    """The item the latest diary screen asks (from its callback data), None on review."""
    msg = p.last_with_buttons()
    for _, data in msg.flat_buttons:
        if data and data.startswith(("d:a:", "d:t:")):
            return data.split(":")[3]
    return None


async def answer_until_review(p: Player, answers: dict[str, str], *, max_steps: int = 20) -> None:
    """Answer whatever is asked from `answers` until the review screen shows."""
    for _ in range(max_steps):
        msg = p.last
        if any(d == f"d:x:{_occ(msg)}" for _, d in msg.flat_buttons if d):
            return
        item = current_item(p) if msg.buttons else None
        if item is None:
            # a typed question (number / text): its code is in the answers as the next typed one
            typed = [k for k in ("TEMP", "OTHER_TEXT") if k in answers]
            assert typed, f"typed question but no typed answer given: {msg.text}"
            await p.send(answers[typed[0]])
            answers = {k: v for k, v in answers.items() if k != typed[0]}
            continue
        code = answers[item]
        occ = _occ(p.last_with_buttons())
        if item in MULTI:
            for c in code.split(","):
                await p.press_data(f"d:t:{occ}:{item}:{c}", p.last_with_buttons())
            await p.press_data(f"d:n:{occ}:{item}", p.last_with_buttons())
        else:
            await p.press_data(f"d:a:{occ}:{item}:{code}", p.last_with_buttons())
    raise AssertionError(f"no review screen after {max_steps} steps: {p.last.text}")


def _occ(msg: object) -> str:
    for _, data in getattr(msg, "flat_buttons", []):
        if data and data.startswith("d:"):
            return data.split(":")[2]
    return ""


async def fill_and_submit(p: Player, answers: dict[str, str] | None = None) -> None:
    """Open today's diary with /diary, answer everything and submit."""
    await p.send("/diary")
    await answer_until_review(p, dict(answers or QUIET))
    await p.tap(_submit_label(p))


def _submit_label(p: Player) -> str:
    msg = p.last_with_buttons()
    for label, data in msg.flat_buttons:
        if data and data.startswith("d:x:"):
            return label
    raise AssertionError(f"no submit button: {msg.text}")
