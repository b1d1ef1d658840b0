-- Router retries and fallbacks: how many upstream calls a request took (1 = answered first time);
-- prompt tokens written to a provider's prompt cache (Anthropic's cache_creation_input_tokens).
ALTER TABLE usage ADD COLUMN IF NOT EXISTS cache_write_tokens UInt32 DEFAULT 0 AFTER reasoning_tokens;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS upstream_attempts UInt16 DEFAULT 1 AFTER worker_id;
