-- The `id` of the answer a client got (`chatcmpl-...`), so /spend/logs?request_id= finds a request
-- by it as well as by llmgw's request id.
ALTER TABLE usage ADD COLUMN IF NOT EXISTS response_id String DEFAULT '' AFTER request_id;
