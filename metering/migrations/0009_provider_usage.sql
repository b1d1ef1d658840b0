-- The providers' own records of llmgw's traffic, read by the reconciler (metering/reconcile/):
-- their usage reports by provider, provider API key or project, model and hour, the cost they
-- charged (their daily cost report, shared out over the day's hours by tokens), and the prices
-- those costs imply next to llmgw's table. A report read again replaces the rows it read before
-- (ReplacingMergeTree by `fetched_at`): exact figures read `FINAL`.
CREATE TABLE IF NOT EXISTS provider_usage
(
    provider            LowCardinality(String),
    api_key_id          String,
    project_id          String,
    model               String,
    reported_model      String,
    hour                DateTime('UTC'),
    ours                Bool,
    requests            Nullable(UInt64),
    input_tokens        UInt64,
    cached_tokens       UInt64,
    cache_write_tokens  UInt64,
    output_tokens       UInt64,
    cost                Nullable(Decimal(18, 9)),
    fetched_at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(fetched_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (provider, model, hour, api_key_id, project_id);
-- What one token of each type cost at the provider on a day (its cost report over its usage
-- report), next to llmgw's price for it: a price that no longer matches shows here.
CREATE TABLE IF NOT EXISTS provider_prices
(
    provider        LowCardinality(String),
    model           String,
    token_type      LowCardinality(String),
    day             Date,
    tokens          UInt64,
    provider_cost   Decimal(18, 9),
    llmgw_price     Nullable(Float64),
    fetched_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(fetched_at)
ORDER BY (provider, model, token_type, day);
