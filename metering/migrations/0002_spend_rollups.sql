-- Spend per key / user / team / model, per hour and per day, kept up to date by materialized
-- views on inserts into `usage`. One row per (dimension, id, period); `dimension` is 'key'
-- (id = key_hash), 'user' (user_id), 'team' (team_id) or 'model' (model_group). Requests
-- without a user or a team add nothing to those dimensions.
--
-- SummingMergeTree: rows of the same (dimension, id, period) are summed by background merges,
-- so always read with sum(...) GROUP BY. Metering inserts each request_id once (it drops ids
-- already in `usage` before inserting), which keeps these totals exact.
CREATE TABLE IF NOT EXISTS spend_hourly
(
    dimension         LowCardinality(String),
    id                String,
    hour              DateTime('UTC'),
    requests          UInt64,
    errors            UInt64,
    unpriced          UInt64,
    prompt_tokens     UInt64,
    completion_tokens UInt64,
    cached_tokens     UInt64,
    reasoning_tokens  UInt64,
    cost              Decimal(38, 9)
)
ENGINE = SummingMergeTree
ORDER BY (dimension, id, hour);

CREATE TABLE IF NOT EXISTS spend_daily
(
    dimension         LowCardinality(String),
    id                String,
    day               Date,
    requests          UInt64,
    errors            UInt64,
    unpriced          UInt64,
    prompt_tokens     UInt64,
    completion_tokens UInt64,
    cached_tokens     UInt64,
    reasoning_tokens  UInt64,
    cost              Decimal(38, 9)
)
ENGINE = SummingMergeTree
ORDER BY (dimension, id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS spend_hourly_mv TO spend_hourly AS
SELECT
    d.1 AS dimension,
    assumeNotNull(d.2) AS id,
    toStartOfHour(ts) AS hour,
    count() AS requests,
    countIf(status != 'success') AS errors,
    countIf(NOT cost_known) AS unpriced,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost) AS cost
FROM usage
ARRAY JOIN arrayFilter(
    x -> x.2 IS NOT NULL AND x.2 != '',
    [('key', key_hash), ('user', user_id), ('team', team_id), ('model', model_group)]
) AS d
GROUP BY dimension, id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS spend_daily_mv TO spend_daily AS
SELECT
    d.1 AS dimension,
    assumeNotNull(d.2) AS id,
    toDate(ts) AS day,
    count() AS requests,
    countIf(status != 'success') AS errors,
    countIf(NOT cost_known) AS unpriced,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost) AS cost
FROM usage
ARRAY JOIN arrayFilter(
    x -> x.2 IS NOT NULL AND x.2 != '',
    [('key', key_hash), ('user', user_id), ('team', team_id), ('model', model_group)]
) AS d
GROUP BY dimension, id, day;
