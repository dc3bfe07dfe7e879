-- 0001: the foundation. Patients are known by study subject ID and Telegram ids only.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE staff (
    telegram_id INTEGER PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('coordinator', 'investigator', 'admin')),
    name        TEXT NOT NULL,
    lang        TEXT NOT NULL CHECK (lang IN ('zh_Hans', 'en')),
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL
);

CREATE TABLE patients (
    id             INTEGER PRIMARY KEY,
    subject        TEXT NOT NULL UNIQUE,
    injection_date TEXT NOT NULL,             -- ISO date, Day 0
    enrolled_on    TEXT NOT NULL,             -- ISO local date the code was issued
    lang           TEXT CHECK (lang IN ('zh_Hans', 'en')),  -- NULL: ask at /start
    timezone       TEXT NOT NULL,
    prompt_time    TEXT NOT NULL,             -- HH:MM local
    status         TEXT NOT NULL DEFAULT 'invited'
                   CHECK (status IN ('invited', 'active', 'paused', 'withdrawn', 'completed')),
    chat_id        INTEGER UNIQUE,
    user_id        INTEGER UNIQUE,
    unreachable    INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL
);

CREATE TABLE enrolment_codes (
    code_hash  TEXT PRIMARY KEY,              -- sha256 of the code; the code itself is never stored
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE code_attempts (
    chat_id      INTEGER PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT
);

CREATE TABLE occurrences (
    id          INTEGER PRIMARY KEY,
    patient_id  INTEGER NOT NULL REFERENCES patients (id),
    key         TEXT NOT NULL,                -- phase:study_day
    phase       TEXT NOT NULL,
    form        TEXT NOT NULL,
    study_day   INTEGER NOT NULL,
    local_date  TEXT NOT NULL,
    opens_at    TEXT NOT NULL,                -- UTC
    remind_at   TEXT NOT NULL,
    closes_at   TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'scheduled'
                CHECK (status IN ('scheduled', 'prompted', 'reminded', 'completed', 'missed',
                                  'paused', 'withdrawn')),
    prompted_at  TEXT,
    reminded_at  TEXT,
    submitted_at TEXT,
    UNIQUE (patient_id, key)
);
CREATE INDEX occurrences_by_status_opens ON occurrences (status, opens_at);
CREATE INDEX occurrences_by_patient_day ON occurrences (patient_id, study_day);

-- One row per item of a diary; kept as a draft until the diary is submitted.
CREATE TABLE answers (
    id            INTEGER PRIMARY KEY,
    occurrence_id INTEGER NOT NULL REFERENCES occurrences (id),
    item          TEXT NOT NULL,
    value         TEXT NOT NULL,
    answered_at   TEXT NOT NULL,
    submitted_at  TEXT,
    UNIQUE (occurrence_id, item)
);

-- Where each patient is in a diary: explicit, durable conversation state.
CREATE TABLE diary_sessions (
    patient_id    INTEGER PRIMARY KEY REFERENCES patients (id),
    occurrence_id INTEGER NOT NULL REFERENCES occurrences (id),
    item          TEXT,                       -- item being asked; NULL on the review screen
    revisiting    INTEGER NOT NULL DEFAULT 0, -- 1: changing one answer from review
    message_id    INTEGER,                    -- the bot message the diary is shown in
    updated_at    TEXT NOT NULL
);

-- Every outgoing message, durable before it is sent.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    priority    INTEGER NOT NULL,             -- 0 urgent alert, 1 reply, 2 prompt, 3 digest
    chat_id     INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('send', 'edit', 'document', 'photo')),
    payload     TEXT NOT NULL,                -- JSON
    ref         TEXT,                         -- what it is about, e.g. alert:12:staff:1001
    status      TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  TEXT NOT NULL,
    last_error  TEXT,
    message_id  INTEGER,
    created_at  TEXT NOT NULL,
    sent_at     TEXT
);
CREATE INDEX outbox_queue ON outbox (status, priority, id);

-- Append-only audit trail; each row hashes its content and the previous row's hash.
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,                 -- system | patient:RP-001 | staff:1001 | cli
    action     TEXT NOT NULL,
    subject    TEXT,
    entity     TEXT,
    old_value  TEXT,
    new_value  TEXT,
    reason     TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;

-- A typed answer the bot is waiting for outside a diary (e.g. a new reminder time).
CREATE TABLE pending_inputs (
    chat_id    INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
