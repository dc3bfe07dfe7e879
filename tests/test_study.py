"""The study definition is validated at start-up; every error names the key that is wrong.

Each case edits the packaged NCT06438809 file as a study team might (a typo, a wrong type, an
impossible value) and expects `load_study` to refuse it with a message naming the key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.study import StudyError, load_study

PACKAGED = Path(load_study().source).read_text(encoding="utf-8")


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    load_study(path)


def _edit(old: str, new: str, count: int = 1) -> str:
    assert old in PACKAGED, old
    return PACKAGED.replace(old, new, count)


def test_the_packaged_study_is_valid() -> None:
    study = load_study()
    assert study.id == "NCT06438809"
    assert {i.code for i in study.items} >= {"BLEED", "URGENCY", "PAIN", "FEVER", "TEMP"}


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        # a misspelt key is not silently ignored (the fever question would be asked every day)
        ("days = [0, 730]", "dayz = [0, 730]", r"items\[\d+\]\.dayz: unknown key here"),
        ("days = [0, 14]", "dayz = [0, 14]", r"rules\[\d+\]\.when\.dayz: unknown key here"),
        # the safety text: every study language, only the {emergency} placeholder
        ('\nen = "Your study team', '\nfr = "Your study team', r"safety\.text\.en: missing"),
        ('version = "2026-11-30 v2"\n', "", r"safety\.version: missing"),
        ("call {emergency} now", "call {phone} now", r"safety\.text\.en: the only placeholder"),
        ("baseline_min_diaries = 3", "baseline_min_diaries = 0", "must be 1 or more"),
        (
            "missed_in_a_row_alert = 3",
            "missed_in_row_alert = 3",
            r"schedule\.missed_in_row_alert: unknown key",
        ),
        ('timezone = "Asia/Shanghai"', 'timezone = "Asia/Shanghai"\ncolour = "blue"', "colour"),
        ("[study]", "[studdy]", r"studdy: unknown key here|study: missing"),
        # wrong types and values
        ("closing_day = 730", 'closing_day = "730"', r"schedule\.closing_day: expected a whole"),
        ('timezone = "Asia/Shanghai"', 'timezone = "Asia/Beijing"', r"study\.timezone"),
        ('default_prompt_time = "20:00"', 'default_prompt_time = "8pm"', "expected HH:MM"),
        ("message_text_keep_days = 30", "message_text_keep_days = 0", "at least 1 day"),
    ],
)
def test_a_bad_study_file_names_the_key(tmp_path: Path, old: str, new: str, error: str) -> None:
    with pytest.raises(StudyError, match=error):
        _load(tmp_path, _edit(old, new))


def test_the_safety_text_comes_from_the_study_file_per_language() -> None:
    study = load_study()
    assert study.safety.version == "2026-11-30 v2"
    assert study.emergency_number == study.safety.emergency_number == "120"
    en, zh = study.safety.text("en"), study.safety.text("zh_Hans")
    for needle in ("has been told", "Do not wait for our call", "call 120 now", "39 °C"):
        assert needle in en
    assert "outside mainland China" in en
    assert en.index("call 120") < en.index("emergency department")  # 120 first
    assert "急救电话120" in zh and "不要等我们的电话" in zh and "当地急救电话" in zh
    assert "{" not in en + zh


@pytest.mark.parametrize(
    ("locale", "shown"), [("zh_Hans", "zh_Hans"), ("en", "en"), ("fr", "zh_Hans"), ("", "zh_Hans")]
)
def test_the_language_of_the_safety_text_shown(locale: str, shown: str) -> None:
    """What `safety_text_shown` records as `lang`: the language whose text was shown (the
    study's first language when it has none in the patient's)."""
    safety = load_study().safety
    assert safety.language(locale) == shown
    assert safety.text(locale) == safety.text(shown)


def test_not_toml_at_all(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="not valid TOML"):
        _load(tmp_path, PACKAGED + "\n[[[broken\n")
