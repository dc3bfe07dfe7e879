-- 0012 (server data): versions of the study definition. The file's hash and text are stored the
-- first time the bot starts with it; a changed file is a new version. Answers keep the version
-- they were asked under and a diary the version it was submitted under: the triggers stamp the
-- current version (meta 'study_version', set at start-up) on every answer written or changed and
-- on every diary completed, whatever code path wrote it.

CREATE TABLE study_versions (
    version       INTEGER PRIMARY KEY,
    sha256        TEXT NOT NULL UNIQUE,       -- of the study file as read
    study_id      TEXT NOT NULL,
    source        TEXT NOT NULL,              -- file name it was read from
    content       TEXT,                       -- the TOML text (ODM metadata of old versions)
    first_seen_at TEXT NOT NULL
);

ALTER TABLE answers ADD COLUMN study_version INTEGER REFERENCES study_versions (version);
ALTER TABLE occurrences ADD COLUMN study_version INTEGER REFERENCES study_versions (version);

CREATE TRIGGER answers_study_version AFTER INSERT ON answers WHEN NEW.study_version IS NULL
BEGIN
    UPDATE answers SET study_version =
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'study_version')
    WHERE id = NEW.id;
END;

CREATE TRIGGER answers_study_version_changed AFTER UPDATE OF value ON answers
BEGIN
    UPDATE answers SET study_version =
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'study_version')
    WHERE id = NEW.id;
END;

CREATE TRIGGER occurrences_study_version AFTER UPDATE OF status ON occurrences
WHEN NEW.status = 'completed'
BEGIN
    UPDATE occurrences SET study_version =
        (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'study_version')
    WHERE id = NEW.id;
END;
