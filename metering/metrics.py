"""Metering's metrics, served on its own port (`LLMGW_METERING_METRICS_PORT`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from llmgw.metrics import INSERT_BUCKETS

INSERT_DURATION = Histogram(
    "llmgw_clickhouse_insert_duration_seconds",
    "Time of one batch's insert into ClickHouse (the usage rows of the batch).",
    buckets=INSERT_BUCKETS,
)
ROWS = Counter("llmgw_usage_rows_inserted", "Usage rows inserted into ClickHouse (redeliveries not counted).")
LAG = Gauge(
    "llmgw_metering_lag_seconds",
    "Age of the oldest usage event received and not yet stored (0 when none waits).",
)
