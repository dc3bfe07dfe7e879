"""Translations: locale mapping, complete zh_Hans catalog, catalogs current with the code."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.i18n import LOCALE_DIR, locale_for, parse_lang, t

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("code", "locale"),
    [
        ("zh", "zh_Hans"),
        ("zh-hans", "zh_Hans"),
        ("zh-CN", "zh_Hans"),
        ("zh-SG", "zh_Hans"),
        ("zh_Hans", "zh_Hans"),
        ("en", "en"),
        ("en-US", "en"),
        ("de", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_locale_mapping(code: str | None, locale: str) -> None:
    assert locale_for(code) == locale


def test_parse_lang_is_strict() -> None:
    assert parse_lang("zh") == "zh_Hans" and parse_lang("EN") == "en"
    assert parse_lang("fr") is None


def test_dates_through_babel() -> None:
    assert t("zh_Hans").date(date(2026, 12, 1)) == "2026年12月1日"
    assert t("en").date(date(2026, 12, 1)) == "1 December 2026"


def _catalog(locale: str):  # type: ignore[no-untyped-def]
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        return read_po(fp, locale=locale.replace("_Hans", ""))


def test_zh_hans_catalog_is_complete_and_not_fuzzy() -> None:
    catalog = _catalog("zh_Hans")
    empty = [
        m.id
        for m in catalog
        if m.id and not (m.string if isinstance(m.string, str) else all(m.string))
    ]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not empty, f"untranslated zh_Hans entries: {empty[:10]}"
    assert not fuzzy, f"fuzzy zh_Hans entries: {fuzzy[:10]}"


def test_zh_translation_keeps_placeholders() -> None:
    import re

    for m in _catalog("zh_Hans"):
        if not m.id or not isinstance(m.id, str):
            continue
        wanted = set(re.findall(r"\{(\w+)\}", m.id))
        got = set(re.findall(r"\{(\w+)\}", m.string))
        assert wanted == got, f"placeholders differ in {m.id!r}: {m.string!r}"


def test_catalogs_are_current_with_the_code(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    subprocess.run(
        [
            str(pybabel),
            "-q",
            "extract",
            "-F",
            "pyproject.toml",
            "--no-location",
            "--sort-output",
            "-o",
            str(pot),
            "bot",
            "conversations",
        ],
        cwd=ROOT,
        check=True,
    )
    with pot.open("rb") as fp:
        code_ids = {m.id for m in read_po(fp) if m.id}
    for locale in ("zh_Hans", "en"):
        po_ids = {m.id for m in _catalog(locale) if m.id}
        missing = code_ids - po_ids
        assert not missing, (
            f"{locale} catalog is behind the code; run `make locales`: {sorted(missing)[:10]}"
        )


# 退出 in a zh msgstr reads as "quit / withdraw from the study" (clinical decision 27): staff
# must never record a study withdrawal when only the diary stopped. It may only mean signing
# out of the console, or say explicitly that stopping the diary is *not* leaving the study.
ALLOWED_TUICHU = ("退出登录", "不等于退出研究")


def test_zh_says_tuichu_only_for_sign_out() -> None:
    catalog = _catalog("zh_Hans")
    wrong = []
    for m in catalog:
        strings = [m.string] if isinstance(m.string, str) else list(m.string)
        for text in strings:
            rest = text or ""
            for allowed in ALLOWED_TUICHU:
                rest = rest.replace(allowed, "")
            if "退出" in rest:
                wrong.append((m.id, text))
    assert not wrong, f"退出 where the diary only stops (decision 27: 停止日记): {wrong}"
    withdraw = {m.id: m.string for m in catalog if m.id == "Withdraw"}
    assert withdraw == {"Withdraw": "停止日记"}
