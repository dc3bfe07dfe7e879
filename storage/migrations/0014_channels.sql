-- 0014: channels other than Telegram. Every outbox row has a channel: 'telegram' (the Sender
-- drains these, as before) or 'sms' / 'wecom' / 'email' (bot/channels/dispatcher.py drains
-- each of those on its own). `destination` is where a non-Telegram row goes: a phone number
-- (E.164), a webhook URL, an e-mail address. Such rows have chat_id 0 (the column stays
-- NOT NULL; no Telegram chat has id 0).
ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'telegram';
ALTER TABLE outbox ADD COLUMN destination TEXT;
CREATE INDEX outbox_queued_by_channel ON outbox (channel, priority, id) WHERE status = 'queued';

-- One-time links in SMS / WeCom alerts: the link carries a signed token naming this row;
-- opening it shows the alert, confirming records "seen" by whom it was sent to (audited) and
-- uses the link up. Only the nonce is stored; the token's signature needs the server secret.
CREATE TABLE alert_links (
    nonce      TEXT PRIMARY KEY,
    alert_id   INTEGER NOT NULL REFERENCES alerts (id),
    route      TEXT NOT NULL,                 -- sms | wecom | email
    staff_id   INTEGER,                       -- the staff member it was sent to, if known
    recipient  TEXT NOT NULL,                 -- who, as shown (a name, "WeCom group")
    lang       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
