-- 0010 (privacy at rest, audit trail that proves itself).
-- audit.mac: HMAC-SHA256 of the entry's hash, keyed by the server secret that is not in the
-- database (storage/keys.py). Entries written before this migration have none; the first
-- start after it appends an `audit_key` entry whose MAC covers the whole chain before it.
ALTER TABLE audit ADD COLUMN mac TEXT;
-- enrolment codes: `keyed` = code_hash is an HMAC with the server secret (older rows: a plain
-- SHA-256, still accepted until they expire); `revoked_at` = replaced by `enroll --reissue`
-- or cut off by `subject unlink`.
ALTER TABLE enrolment_codes ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE enrolment_codes ADD COLUMN revoked_at TEXT;
