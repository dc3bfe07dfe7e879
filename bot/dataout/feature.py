"""Wires data out into the bot: /export (staff), /progress (patients).

The staff chart goes out with /patient (conversations.dataout.send_patient_chart). A missing
CJK font is said once at start-up: Chinese chart labels would otherwise be empty boxes.
"""

from __future__ import annotations

import logging

from bot.dataout.charts import cjk_font
from bot.registry import FeatureHost
from conversations.dataout import COMMANDS

log = logging.getLogger(__name__)


def install(bot: FeatureHost) -> None:
    bot.hooks.commands.update(COMMANDS)
    if cjk_font() is None:
        log.warning(
            "no CJK font found: Chinese chart labels will not render; install"
            " fonts-wqy-microhei (see docs/data.md)"
        )
