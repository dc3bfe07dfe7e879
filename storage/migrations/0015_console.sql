-- The web console (issue 14): staff who sign in with a password and a TOTP second factor.
--
-- One person, one identity: a staff member is one row of `staff`, whether they use Telegram,
-- the console or both. Telegram user ids are positive; a member who has no Telegram account
-- (a data manager, a monitor) gets a negative id, which no Telegram user can have, so every
-- existing reference (alerts.acked_by, audit actor staff:<id>) works unchanged and nothing is
-- ever sent to Telegram for them. The role `monitor` (read-only) is new: SQLite cannot change a
-- CHECK constraint, so the table is rebuilt.
CREATE TABLE staff_new (
    telegram_id     INTEGER PRIMARY KEY,
    role            TEXT NOT NULL
                    CHECK (role IN ('coordinator', 'investigator', 'admin', 'monitor')),
    name            TEXT NOT NULL,
    lang            TEXT NOT NULL CHECK (lang IN ('zh_Hans', 'en')),
    active          INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    email           TEXT UNIQUE COLLATE NOCASE,
    password_hash   TEXT,                      -- argon2id (argon2-cffi), never the password
    totp_secret     TEXT,                      -- Fernet-encrypted with the console key file
    totp_confirmed  INTEGER NOT NULL DEFAULT 0,
    totp_last_step  INTEGER,                   -- the last accepted TOTP step: no replay
    failed_logins   INTEGER NOT NULL DEFAULT 0,
    locked_at       TEXT                       -- 5 failed sign-ins: an admin unlocks
);
INSERT INTO staff_new (telegram_id, role, name, lang, active, created_at)
    SELECT telegram_id, role, name, lang, active, created_at FROM staff;
DROP TABLE staff;
ALTER TABLE staff_new RENAME TO staff;

-- One-time links to set a password and TOTP; only the SHA-256 of the token is stored.
CREATE TABLE console_invites (
    token_hash  TEXT PRIMARY KEY,
    staff_id    INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);

-- Signed-in browsers; only the SHA-256 of the cookie is stored. Idle and absolute limits are
-- checked on every request; "log out everywhere" revokes all of a member's rows.
CREATE TABLE console_sessions (
    token_hash  TEXT PRIMARY KEY,
    staff_id    INTEGER NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX console_sessions_staff ON console_sessions (staff_id);
