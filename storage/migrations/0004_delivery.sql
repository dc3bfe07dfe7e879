-- 0004: delivery. Edits by reference (`enqueue_edit_ref`) look up the message sent for an outbox
-- ref at send time, and the sender skips edits whose message is still queued: both by ref.
CREATE INDEX outbox_by_ref ON outbox (ref, chat_id) WHERE ref IS NOT NULL;
-- `diarybot status` and the health line count what was sent or failed recently.
CREATE INDEX outbox_by_outcome ON outbox (status, sent_at);
-- Per-chat order: a row waits while an earlier row of its chat (same or higher priority) is
-- parked for a later retry, so messages to one person never arrive out of order.
CREATE INDEX outbox_queued_by_chat ON outbox (chat_id, priority, id) WHERE status = 'queued';
