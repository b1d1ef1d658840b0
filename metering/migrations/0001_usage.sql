-- The raw usage table: one row per request, every field of `llmgw.contracts.UsageEvent`
-- (the column names are the field names).
--
-- ReplacingMergeTree: rows with the same sorting key are merged into one. A redelivered event
-- is byte-identical (same key_hash, ts and request_id), so a duplicate that slipped past
-- metering's insert-time check still collapses; exact counts read `usage FINAL`.
-- The sorting key starts with what per-key time-range queries (spend, budgets) filter on.
CREATE TABLE IF NOT EXISTS usage
(
    request_id        String,
    ts                DateTime64(3, 'UTC'),
    key_hash          String,
    key_alias         Nullable(String),
    user_id           Nullable(String),
    team_id           Nullable(String),
    operation         LowCardinality(String),
    model_group       LowCardinality(String),
    deployment_id     LowCardinality(String),
    provider          LowCardinality(String),
    upstream_model    LowCardinality(String),
    prompt_tokens     UInt32,
    completion_tokens UInt32,
    cached_tokens     UInt32,
    reasoning_tokens  UInt32,
    cost              Decimal(18, 9),
    cost_known        Bool,
    latency_ms        Float64,
    ttft_ms           Nullable(Float64),
    status            LowCardinality(String),
    http_status       UInt16,
    error_code        LowCardinality(Nullable(String)),
    usage_source      LowCardinality(String),
    stream            Bool,
    attempt           UInt16,
    worker_id         LowCardinality(String),
    INDEX request_id_bloom request_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (key_hash, toDate(ts), ts, request_id);
