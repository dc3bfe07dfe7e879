-- 0003: the 24-month follow-up extras (bot/followup): visit reminders and the closing message,
-- the "missed in a row" compliance events, the coordinator digest and staff confirmations.

-- One row per dated thing the bot must do once for a patient apart from diaries: a visit
-- reminder (key visit:<code>:<days_before>:<target date>) or the closing message (key closing).
-- Rows are computed from the patient's schedule (see followup_plans) and marked when done, so a
-- restart never repeats one and a re-anchored visit date gets reminders of its own.
CREATE TABLE followup_events (
    id          INTEGER PRIMARY KEY,
    patient_id  INTEGER NOT NULL REFERENCES patients (id),
    key         TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('visit_reminder', 'closing')),
    due_at      TEXT NOT NULL,                -- UTC
    expires_at  TEXT,                         -- UTC; a late reminder after this is skipped
    data        TEXT NOT NULL DEFAULT '{}',   -- JSON: visit code, dates (to render the text)
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'skipped', 'cancelled')),
    done_at     TEXT,
    UNIQUE (patient_id, key)
);
CREATE INDEX followup_events_due ON followup_events (status, due_at);
-- Re-planning one patient deletes their pending rows: without this index SQLite picks the one
-- above and scans every pending row of every patient (quadratic over 10,000 subjects).
CREATE INDEX followup_events_by_patient ON followup_events (patient_id, status);

-- What each patient's followup_events were computed from (injection_date|timezone|prompt_time).
-- A patient whose current values differ (new link, re-anchor, new time zone) is recomputed.
CREATE TABLE followup_plans (
    patient_id INTEGER PRIMARY KEY REFERENCES patients (id),
    signature  TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- "N diaries missed in a row": one row per run (identified by its first missed diary), so the
-- team is told once per run, however long it gets.
CREATE TABLE compliance_events (
    id          INTEGER PRIMARY KEY,
    patient_id  INTEGER NOT NULL REFERENCES patients (id),
    kind        TEXT NOT NULL CHECK (kind IN ('missed_in_a_row')),
    run_start   TEXT NOT NULL,                -- occurrence key of the first missed diary
    missed      INTEGER NOT NULL,             -- run length when the event was raised
    created_at  TEXT NOT NULL,
    routed_to   TEXT,                         -- 'escalation' when handed on; NULL: recorded only
    UNIQUE (patient_id, kind, run_start)
);

-- The coordinator digest: one row per study-local day it was sent (durable "once a day").
CREATE TABLE digest_runs (
    local_date TEXT PRIMARY KEY,              -- study time zone
    sent_at    TEXT NOT NULL,
    recipients INTEGER NOT NULL,
    quiet      INTEGER NOT NULL
);

-- A staff command waiting for its Confirm button (withdraw, re-anchor): the callback carries
-- only this row's id, so the reason text never has to fit into 64 bytes of callback data.
CREATE TABLE followup_confirmations (
    id          INTEGER PRIMARY KEY,
    staff_id    INTEGER NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('withdraw', 'reanchor')),
    subject     TEXT NOT NULL,
    argument    TEXT,                         -- new injection date for reanchor
    reason      TEXT,
    created_at  TEXT NOT NULL,
    used_at     TEXT
);

-- The scheduler asks on every tick which open windows have closed and when the next reminder or
-- closing is; without these two indexes each tick scans every future occurrence (10,000
-- subjects: ~1.2 M rows, ~0.6 s a tick). See docs/performance.md.
CREATE INDEX occurrences_by_status_closes ON occurrences (status, closes_at);
CREATE INDEX occurrences_by_status_remind ON occurrences (status, remind_at);
