-- 0007: safety signals that do not wait for Submit (issue 10).
--
-- A diary that closes unsubmitted (its window ended, or the patient was paused or withdrawn
-- mid-diary) keeps the answers given so far as data: `incomplete_at` is when it closed so.
-- Its occurrence status stays missed / paused / withdrawn (compliance counts it as not
-- completed); exports show such a diary with the status "incomplete" and its answers.
-- `rules_run_at` is when the escalation rules last ran on the closed diary: NULL while that is
-- still to do (the scheduler's tick does it, durably, whoever closed the diary).
ALTER TABLE occurrences ADD COLUMN incomplete_at TEXT;
ALTER TABLE occurrences ADD COLUMN rules_run_at TEXT;
CREATE INDEX occurrences_rules_pending ON occurrences (incomplete_at)
    WHERE incomplete_at IS NOT NULL AND rules_run_at IS NULL;

-- One alert card per diary and level: which diaries each alert shows (a card raised for one
-- diary, updated when a later diary reports the same finding while it is unacknowledged).
CREATE TABLE alert_diaries (
    alert_id      INTEGER NOT NULL REFERENCES alerts (id),
    occurrence_id INTEGER NOT NULL REFERENCES occurrences (id),
    PRIMARY KEY (alert_id, occurrence_id)
);
CREATE INDEX alert_diaries_by_occurrence ON alert_diaries (occurrence_id);

-- A patient may now have several open diary alerts (one per diary or finding group), so the
-- "one open alert per patient and rule" index covers only the alerts that do not come from a
-- diary (missed diaries, a blocked bot, data-change requests).
DROP INDEX alerts_one_open;
CREATE UNIQUE INDEX alerts_one_open_event ON alerts (patient_id, rule)
    WHERE status = 'open' AND rule IN ('MISSED', 'BLOCKED', 'DATA_CHANGE');
CREATE INDEX alerts_by_patient ON alerts (patient_id, status, level);
