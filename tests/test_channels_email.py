"""SMTP: a password is never sent over a connection without TLS."""

from __future__ import annotations

import pytest

from bot.channels.base import Rejected
from bot.channels.email import send_email
from tests.channels_support import smtp_server


async def test_a_password_is_not_sent_to_a_server_without_starttls() -> None:
    with smtp_server() as (controller, box):
        url = f"smtp://alerts:secret-pw@127.0.0.1:{controller.port}"
        with pytest.raises(Rejected, match="not sent unencrypted"):
            await send_email(url, "team@example.org", "test", "body")
        assert box.messages == []
        # Without credentials (a local relay) plain SMTP is fine.
        await send_email(f"smtp://127.0.0.1:{controller.port}", "team@example.org", "t", "b")
        assert len(box.messages) == 1
