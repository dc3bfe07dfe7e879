-- 0006: outbox retention. The text of a message (and a sent file's bytes) is needed only until
-- Telegram has it; the audit trail and the answers are the record. After the study's
-- `message_text_keep_days` a sent row keeps its metadata (chat, kind, ref, message id, times)
-- and loses its text; `pruned_at` says when. The partial index finds the rows still to prune.
ALTER TABLE outbox ADD COLUMN pruned_at TEXT;
CREATE INDEX outbox_to_prune ON outbox (sent_at) WHERE status = 'sent' AND pruned_at IS NULL;
