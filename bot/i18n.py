"""Translations and locale-aware formatting.

Two locales: `zh_Hans` and `en`. Telegram's `language_code` is mapped here, by us, because
Babel's `Translations.load(dirname, ["zh_CN"])` silently falls back to English for a `zh_Hans`
catalog. Msgids are English sentences with named `{placeholders}`; never f-strings.
"""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

LOCALES = ("zh_Hans", "en")
DEFAULT_LOCALE = "zh_Hans"
# An installed wheel carries the catalogs, compiled, in the package (setup.py's build hook); a
# checkout (and an editable install) uses the repository's locales/ (`make locales`).
_PACKAGED = Path(__file__).resolve().parent / "locales"
LOCALE_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"

# Babel locale used for dates and numbers; zh_Hans_CN gives 2026年12月1日.
_BABEL_LOCALE = {"zh_Hans": "zh_Hans_CN", "en": "en_GB"}


def N_(msgid: str) -> str:
    """Mark a string for extraction without translating it now."""
    return msgid


def locale_for(language_code: str | None) -> str:
    """Map a Telegram `language_code` (or a stored choice) to one of our locales.

    zh, zh-hans, zh-CN, zh-SG, zh_Hans → zh_Hans; anything else (including None) → en.
    Traditional Chinese (zh-TW, zh-HK, zh-Hant) also gets zh_Hans: closer than English.
    """
    if not language_code:
        return "en"
    code = language_code.replace("_", "-").lower()
    if code == "zh" or code.startswith("zh-"):
        return "zh_Hans"
    return "en"


def parse_lang(value: str) -> str | None:
    """Strict parse for CLI / staff input: zh, zh_Hans, zh-CN, en … → locale, else None."""
    v = value.strip().replace("_", "-").lower()
    if v in ("zh", "zh-hans", "zh-cn", "zh-sg", "cn", "中文"):
        return "zh_Hans"
    if v in ("en", "en-gb", "en-us", "english"):
        return "en"
    return None


@lru_cache(maxsize=8)
def translations(locale: str) -> NullTranslations:
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}")
    mo = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not mo.exists():
        # A missing compiled catalog is a set-up error, not something to hide behind English.
        if locale == "en":
            return NullTranslations()
        raise FileNotFoundError(f"{mo} missing: run `make locales` (pybabel compile)")
    with mo.open("rb") as fp:
        return Translations(fp, domain=DOMAIN)


class T:
    """A translator bound to one locale: `t("Hello {name}", name=...)`."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self._tr = translations(locale)
        self.babel = Locale.parse(_BABEL_LOCALE[locale])

    def __call__(self, msgid: str, **kwargs: object) -> str:
        text = self._tr.gettext(msgid)
        return text.format(**kwargs) if kwargs else text

    def n(self, singular: str, plural: str, n: int, **kwargs: object) -> str:
        text = self._tr.ngettext(singular, plural, n)
        return text.format(n=n, **kwargs)

    def date(self, d: date) -> str:
        return format_date(d, format="long", locale=self.babel)

    # Annotations below name the module (`dt.date`): inside this class `date` and `datetime`
    # are the methods above.
    def short_date(self, d: dt.date) -> str:
        return format_date(d, format="medium", locale=self.babel)

    def time(self, t: time) -> str:
        return t.strftime("%H:%M")

    def datetime(self, dt: datetime, tz: str) -> str:
        return format_datetime(
            dt.astimezone(ZoneInfo(tz)), format="medium", tzinfo=ZoneInfo(tz), locale=self.babel
        )

    def clock(self, at: dt.datetime, tz: str) -> str:
        return format_time(at.astimezone(ZoneInfo(tz)), format="HH:mm", locale=self.babel)

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self.babel)


@lru_cache(maxsize=8)
def t(locale: str | None) -> T:
    return T(locale if locale in LOCALES else DEFAULT_LOCALE)


class Refusal(ValueError):
    """A refused request (nothing was written) in two forms: `str(exc)` is the English line for
    the command line and the logs; `text(_)` renders the gettext msgid for a person. A parameter
    that is itself a Refusal (a CSV line's reason) is rendered in the same language."""

    def __init__(self, message: str, msgid: str, **params: object) -> None:
        super().__init__(message)
        self.msgid = msgid
        self.params = params

    def text(self, _: T) -> str:
        return _(
            self.msgid,
            **{k: v.text(_) if isinstance(v, Refusal) else v for k, v in self.params.items()},
        )
