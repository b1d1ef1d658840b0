-- The client's own `x-request-id` (validated at the edge), so a client finds its request by the id
-- it sent; empty when it sent none.
ALTER TABLE usage ADD COLUMN IF NOT EXISTS client_request_id String DEFAULT '' AFTER response_id;
