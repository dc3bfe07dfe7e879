"""Which non-Telegram routes run, from the environment (see bot/channels/sms and alerts.py).

DIARYBOT_SMS            the SMS provider (aliyun | tencent | webhook:URL | log)
ALIYUN_SMS_SIGNATURE    aliyun's signature: v3 (ACS3-HMAC-SHA256, the default) or v1
DIARYBOT_SMS_RATE       SMS per second the provider allows (default 10)
DIARYBOT_WECOM_WEBHOOK  the WeCom group robot (20 messages a minute, its documented limit)
DIARYBOT_SMTP_URL       the mail server
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from bot.channels.base import Route
from bot.channels.email import EmailRoute
from bot.channels.sms import provider_from_env
from bot.channels.sms.log import LogSms
from bot.channels.sms.route import SmsRoute
from bot.channels.wecom import WeComRoute
from bot.domain.study import Study

log = logging.getLogger(__name__)


def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: expected messages per second, e.g. 10") from exc
    if value <= 0:
        raise ValueError(f"{name}: must be more than 0")
    return value


def routes_from_env(
    study: Study, env: Mapping[str, str] | None = None, *, development: bool = False
) -> list[Route]:
    """The routes to run. A wrong setting stops start-up with a message naming the variable.

    `development` (a fake clock: tests, the sandbox): SMS default to the `log` provider, so
    SMS for web-diary patients are "sent" there instead of waiting for a provider."""
    env = os.environ if env is None else env
    routes: list[Route] = []
    provider = provider_from_env(env, study.sms)
    if provider is None and development:
        provider = LogSms()
    if provider is not None:
        rate = _rate(env, "DIARYBOT_SMS_RATE", 10.0)
        # Burst 1: sends evenly spaced, never more than `rate` in any one second.
        routes.append(SmsRoute(provider, rate=rate, burst=1))
    if env.get("DIARYBOT_WECOM_WEBHOOK"):
        routes.append(WeComRoute(rate=_rate(env, "DIARYBOT_WECOM_RATE", 20 / 60), burst=1))
    if env.get("DIARYBOT_SMTP_URL"):
        rate = _rate(env, "DIARYBOT_SMTP_RATE", 1.0)
        routes.append(EmailRoute(env["DIARYBOT_SMTP_URL"], rate=rate))
    if provider is None:
        log.warning("DIARYBOT_SMS is not set: SMS (web-diary patients) wait until it is")
    if env.get("DIARYBOT_ONCALL_SMS") and not env.get("DIARYBOT_SMS"):
        log.error("DIARYBOT_ONCALL_SMS is set but DIARYBOT_SMS is not: no alert goes by SMS")
    if env.get("DIARYBOT_ALERT_EMAIL") and not env.get("DIARYBOT_SMTP_URL"):
        log.error("DIARYBOT_ALERT_EMAIL is set but DIARYBOT_SMTP_URL is not: no alert e-mail")
    return routes
