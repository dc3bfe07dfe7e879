-- 0013: the web diary. A patient is on one channel at a time: Telegram (the default) or a
-- personal web link (for patients who cannot use Telegram; mainland China). A web patient's
-- phone (E.164, for the SMS that carry the link and the prompts) and year of birth (the check
-- on a new device) are stored for web patients only.
ALTER TABLE patients ADD COLUMN channel TEXT NOT NULL DEFAULT 'telegram'
    CHECK (channel IN ('telegram', 'web'));
ALTER TABLE patients ADD COLUMN phone TEXT;
ALTER TABLE patients ADD COLUMN birth_year INTEGER;

-- Personal links PUBLIC_URL/p/<token>: only the sha256 of the token is stored. Reissuing
-- revokes the old one; five wrong years of birth lock it (staff are told) until reissued.
CREATE TABLE web_links (
    id          INTEGER PRIMARY KEY,
    patient_id  INTEGER NOT NULL REFERENCES patients (id),
    token_hash  TEXT NOT NULL UNIQUE,
    failures    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    locked_at   TEXT,
    revoked_at  TEXT
);
CREATE INDEX web_links_by_patient ON web_links (patient_id);

-- A device that passed the year-of-birth check: the long-lived cookie, stored as its sha256.
CREATE TABLE web_devices (
    token_hash   TEXT PRIMARY KEY,
    link_id      INTEGER NOT NULL REFERENCES web_links (id),
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);

-- What the page after a submitted diary shows (the thank-you and, after an urgent answer, the
-- safety text), written in the submit transaction so a reload or a crash cannot lose it.
CREATE TABLE web_notices (
    patient_id    INTEGER PRIMARY KEY REFERENCES patients (id),
    occurrence_id INTEGER NOT NULL REFERENCES occurrences (id),
    urgent        INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);
