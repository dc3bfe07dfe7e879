"""Babel extractor for the study definition: its texts are gettext msgids.

Registered in pyproject's `[tool.babel.extractors]`, so `pybabel extract` puts every question,
option, phase, visit and rule reason into messages.pot and translators only touch .po files.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import Any, BinaryIO

TEXT_KEYS = ("text", "weekly_text", "name", "reason", "short", "title")


def extract_study(
    fileobj: BinaryIO, keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    raw = fileobj.read().decode("utf-8")
    data = tomllib.loads(raw)
    lines = raw.splitlines()
    seen: set[str] = set()
    for path, text in _walk(data, ""):
        if text in seen:
            continue
        seen.add(text)
        lineno = next((i + 1 for i, line in enumerate(lines) if text in line), 0)
        yield lineno, None, text, [f"study: {path}"]


def _walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else key
            if key in TEXT_KEYS and isinstance(value, str):
                yield sub, value
            else:
                yield from _walk(value, sub)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
