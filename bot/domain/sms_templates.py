"""The study file's [sms] table: the provider-approved templates for each kind of SMS.

Mainland China's SMS providers (Alibaba Cloud, Tencent Cloud) send only texts whose template the
provider approved, under an approved signature (the name shown in 【】). The study file names,
per kind of message and per language, the template's code and the parameters in the order the
template uses them; the bot fills them in. Gateways that take free text (`webhook`, `log`) get
the bot's own translated text instead. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Each kind of SMS and the parameters the bot can fill in for it.
PURPOSES: dict[str, tuple[str, ...]] = {
    "web_link": ("link",),  # enrolment: the patient's personal diary link
    "prompt": ("link",),  # today's diary is open
    "reminder": ("link",),  # today's diary is still open
    "visit_reminder": ("visit", "date"),  # a study visit is coming
    "safety": ("phone", "emergency"),  # the safety text after an urgent answer
    "alert": ("level", "id", "subject", "link"),  # an alert, to the on-call investigator
}


class SmsConfigError(ValueError):
    """The [sms] table is invalid; the message names the key."""


@dataclass(frozen=True)
class SmsTemplate:
    code: str
    params: tuple[str, ...]


@dataclass(frozen=True)
class SmsTemplates:
    sign_name: str
    templates: dict[str, dict[str, SmsTemplate]]  # purpose → language → template

    def get(self, purpose: str, lang: str) -> SmsTemplate | None:
        return self.templates.get(purpose, {}).get(lang)


def parse_sms(raw: Any, languages: tuple[str, ...]) -> SmsTemplates | None:
    """Validate the [sms] table (None when the study has none: free-text gateways only).

    Every purpose that is listed needs a template for every study language, and may use only
    the parameters the bot fills for that purpose."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SmsConfigError("sms: expected a table")
    unknown = set(raw) - {"sign_name", "templates"}
    if unknown:
        raise SmsConfigError(f"sms.{sorted(unknown)[0]}: unknown key here (a typo?)")
    sign = raw.get("sign_name")
    if not isinstance(sign, str) or not sign.strip():
        raise SmsConfigError("sms.sign_name: expected the provider-approved signature")
    tables = raw.get("templates", {})
    if not isinstance(tables, dict):
        raise SmsConfigError("sms.templates: expected a table")
    out: dict[str, dict[str, SmsTemplate]] = {}
    for purpose, per_lang in tables.items():
        where = f"sms.templates.{purpose}"
        if purpose not in PURPOSES:
            raise SmsConfigError(f"{where}: unknown kind of SMS; known: {', '.join(PURPOSES)}")
        if not isinstance(per_lang, dict):
            raise SmsConfigError(f"{where}: expected a table of languages")
        out[purpose] = {}
        for lang in languages:
            if lang not in per_lang:
                raise SmsConfigError(f"{where}.{lang}: missing (every study language needs one)")
        for lang, tpl in per_lang.items():
            key = f"{where}.{lang}"
            if lang not in languages:
                raise SmsConfigError(f"{key}: not a study language")
            if not isinstance(tpl, dict) or set(tpl) - {"code", "params"}:
                raise SmsConfigError(f'{key}: expected {{ code = "…", params = ["…"] }}')
            code = tpl.get("code")
            params = tpl.get("params", [])
            if not isinstance(code, str) or not code.strip():
                raise SmsConfigError(f"{key}.code: expected the provider's template code")
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise SmsConfigError(f"{key}.params: expected a list of parameter names")
            for p in params:
                if p not in PURPOSES[purpose]:
                    known = ", ".join(PURPOSES[purpose]) or "none"
                    raise SmsConfigError(f"{key}.params: {p!r} is not filled here; known: {known}")
            out[purpose][lang] = SmsTemplate(code.strip(), tuple(params))
    return SmsTemplates(sign.strip(), out)
