"""The study definition is versioned: each distinct file the bot started with is one version.

At start-up `register()` hashes the study file. A file seen before becomes the current version
again; a new one is stored as the next version (with its text, so exports can describe what
was asked under it) and audited. Answers and diaries are stamped with the current version by
triggers (migration 0012).

A change must not orphan stored data: a file that drops an option code (or a whole item) that
stored answers use is refused before anything is written, with the codes named.
"""

from __future__ import annotations

import hashlib
import tomllib
from datetime import datetime
from pathlib import Path

from bot.domain.study import Study, StudyError, parse_study
from storage import audit, versions
from storage.db import Database


class StudyChangeRefused(StudyError):
    """The study file removes option codes or items that stored answers use."""


def study_hash(study: Study) -> str:
    """sha256 of the file as read (of the parsed definition when built in memory)."""
    text = study.content or repr(study)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def removed_in_use(study: Study, stored: list[tuple[str, str, int]]) -> list[str]:
    """What the study no longer defines but stored answers use, e.g. "option PAIN=3 (2 answers)".

    Pure: `stored` is (item, value, how many answers) as storage.versions.stored_values gives.
    """
    missing_items: dict[str, int] = {}
    missing_codes: dict[tuple[str, str], int] = {}
    items = {it.code: it for it in study.items}
    for item_code, value, count in stored:
        item = items.get(item_code)
        if item is None:
            missing_items[item_code] = missing_items.get(item_code, 0) + count
            continue
        if item.kind not in ("single", "multi"):
            continue
        for code in value.split(",") if item.kind == "multi" else [value]:
            if code and item.option(code) is None:
                key = (item_code, code)
                missing_codes[key] = missing_codes.get(key, 0) + count
    problems = [
        f"option {code} of item {item} ({n} stored answer{'s' if n != 1 else ''})"
        for (item, code), n in sorted(missing_codes.items())
    ]
    problems += [
        f"item {item} ({n} stored answer{'s' if n != 1 else ''})"
        for item, n in sorted(missing_items.items())
    ]
    return problems


async def register(db: Database, study: Study, now: datetime) -> int:
    """Record the study file as the current version (new ones audited); returns its number.

    Raises StudyChangeRefused, changing nothing, when the file removes what answers use.
    """
    digest = study_hash(study)
    source = Path(study.source).name if study.source else "(built in memory)"
    async with db.transaction() as conn:
        known = await versions.by_hash(conn, digest)
        current = await versions.current(conn)
        if known is not None and known.version == current:
            return current
        problems = removed_in_use(study, await versions.stored_values(conn))
        if problems:
            raise StudyChangeRefused(
                f"{source} removes {'; '.join(problems)}: put them back (a changed study file"
                " may add options and items, never remove ones that stored answers use)"
            )
        first = not await versions.all_versions(conn)
        if known is None:
            number = await versions.insert(
                conn, digest, study.id, source, study.content or None, now
            )
        else:
            number = known.version
        await versions.set_current(conn, number)
        if first:
            await versions.stamp_unversioned(conn, number)
        await audit.record(
            conn,
            now,
            "system",
            "study_version",
            entity=f"study:{study.id}",
            old=current,
            new={"version": number, "sha256": digest, "file": source, "new": known is None},
        )
    return number


def study_of(content: str | None, fallback: Study) -> Study:
    """The definition a stored version describes (the running one when its text is unknown
    or no longer parses with this code)."""
    if not content:
        return fallback
    try:
        return parse_study(tomllib.loads(content))
    except (tomllib.TOMLDecodeError, ValueError, KeyError, TypeError):
        return fallback
