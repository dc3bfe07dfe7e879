-- 0009: hardening against floods and unreadable updates (issue 11 §1–2).
-- An update python-telegram-bot cannot parse is kept here verbatim for support, then skipped
-- (it would otherwise stop polling for good). It may hold personal data: the file is private
-- like the rest of the database.
CREATE TABLE unparsable_updates (
    update_id   INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    error       TEXT NOT NULL,      -- the exception type, never its message
    raw         TEXT NOT NULL       -- the update's JSON as Telegram sent it
);
-- Strangers (neither enrolled nor staff): what they tried, counted per person and hour. When the
-- hour is over the counts become ONE audit entry (`stranger_activity`) and the rows go, so a
-- flood of refused commands or wrong codes cannot grow the database without bound.
CREATE TABLE stranger_activity (
    user_id  INTEGER NOT NULL,
    hour     TEXT NOT NULL,        -- the hour's start, UTC ISO
    action   TEXT NOT NULL,        -- e.g. unauthorized:command:/alerts, code_refused:wrong
    count    INTEGER NOT NULL,
    PRIMARY KEY (user_id, hour, action)
);
