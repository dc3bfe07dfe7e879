-- 0005 (data out): record the audit chain's head in meta ("<id> <hash>" of the last entry).
-- storage/audit.py updates it in the same transaction as every entry, so that `diarybot audit
-- verify` can tell when the last entries of the chain were deleted. Existing chains get their
-- current head here.
INSERT INTO meta (key, value)
SELECT 'audit_head', id || ' ' || hash FROM audit ORDER BY id DESC LIMIT 1;
