"""A local, Bot-API-compatible Telegram server for tests, the sandbox and benchmarks."""

from bot.localapi.faults import Faults
from bot.localapi.server import LocalBotApi
from bot.localapi.state import SentMessage

__all__ = ["Faults", "LocalBotApi", "SentMessage"]
