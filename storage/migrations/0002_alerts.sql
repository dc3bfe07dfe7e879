-- 0002: alerts to the study team (escalation). Every state change is also an audit entry.

-- One row per alert. "open" = nobody has acknowledged it yet; while an alert is open, a new
-- diary triggering the same rule updates it instead of raising another (alerts_one_open).
CREATE TABLE alerts (
    id                   INTEGER PRIMARY KEY,
    patient_id           INTEGER NOT NULL REFERENCES patients (id),
    rule                 TEXT NOT NULL,       -- study rule code, or MISSED / BLOCKED / DATA_CHANGE
    level                TEXT NOT NULL CHECK (level IN ('urgent', 'review', 'compliance')),
    reason               TEXT NOT NULL,       -- English msgid, translated for each reader
    status               TEXT NOT NULL DEFAULT 'open'
                         CHECK (status IN ('open', 'acknowledged', 'closed')),
    details              TEXT NOT NULL,       -- JSON: the diaries/events behind the alert
    study_day            INTEGER,             -- of the latest triggering diary
    answered_at          TEXT,                -- when the patient answered it (UTC)
    raised_at            TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    updates              INTEGER NOT NULL DEFAULT 0,
    resends              INTEGER NOT NULL DEFAULT 0,
    next_resend_at       TEXT,                -- urgent and unacknowledged only
    acked_by             INTEGER,             -- staff telegram_id
    acked_at             TEXT,
    triage               TEXT CHECK (triage IN ('not_ae', 'ae', 'sae')),
    triaged_by           INTEGER,
    triaged_at           TEXT,
    contacted_by         INTEGER,
    contacted_at         TEXT,
    note                 TEXT,
    note_by              INTEGER,
    note_at              TEXT,
    sae_aware_at         TEXT,                -- possible SAE: when the team became aware
    sae_next_reminder_at TEXT,
    sae_reminders        INTEGER NOT NULL DEFAULT 0,
    sae_reported_at      TEXT,
    sae_reported_by      INTEGER,
    closed_at            TEXT
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (patient_id, rule) WHERE status = 'open';
CREATE INDEX alerts_by_status ON alerts (status, level, raised_at);

-- Every message that shows an alert (first delivery, re-sends, SAE reminders, /alerts "show"),
-- so that each state change edits every copy in every chat, in the reader's language.
CREATE TABLE alert_copies (
    id         INTEGER PRIMARY KEY,
    alert_id   INTEGER NOT NULL REFERENCES alerts (id),
    chat_id    INTEGER NOT NULL,
    staff_id   INTEGER,                       -- recipient; NULL for the study-team group
    lang       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('alert', 'resend', 'sae', 'show')),
    ref        TEXT NOT NULL UNIQUE,          -- outbox ref of the message
    created_at TEXT NOT NULL
);
CREATE INDEX alert_copies_by_alert ON alert_copies (alert_id);

-- Typed input the escalation flows wait for: a staff note on an alert (key staff:<telegram_id>)
-- or a patient's description of a mistake in a submitted diary (key patient:<patient id>).
CREATE TABLE escalation_pending (
    who         TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('note', 'data_change')),
    target      INTEGER NOT NULL,             -- alert id (note) or occurrence id (data_change)
    created_at  TEXT NOT NULL
);
