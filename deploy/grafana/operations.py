"""The Operations dashboard: llmgw's Prometheus metrics (README, "Metrics (Prometheus)") as
traffic, latency, errors, refusals, queue depth, load, metering and routing health."""

from __future__ import annotations

from deploy.grafana.panels import (
    PROMETHEUS,
    Json,
    dashboard,
    panel,
    prometheus_target,
    stat_options,
    timeseries_options,
)

UID = "llmgw-operations"
RATE = "[$__rate_interval]"


def quantiles(metric: str, by: str) -> list[Json]:
    """p50 and p99 of a histogram, by the label `by` (empty: over everything)."""
    keep = f"le, {by}" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    return [
        prometheus_target(ref, f"histogram_quantile({q}, sum by ({keep}) (rate({metric}_bucket{RATE})))", f"{legend}p{name}")
        for ref, q, name in (("A", "0.5", "50"), ("B", "0.99", "99"))
    ]


def series(title: str, description: str, targets: list[Json], unit: str = "short") -> Json:
    return panel("timeseries", title, description, PROMETHEUS, targets, unit, timeseries_options())


def stat(title: str, description: str, expr: str, unit: str = "short") -> Json:
    return panel("stat", title, description, PROMETHEUS, [prometheus_target("A", expr, "")], unit, stat_options())


def one(expr: str, legend: str) -> list[Json]:
    return [prometheus_target("A", expr, legend)]


def stats() -> list[tuple[int, int, Json]]:
    tiles = [
        stat("Requests / s", "Answers of the edge, all routes.", f"sum(rate(llmgw_requests_total{RATE}))", "reqps"),
        stat(
            "5xx share",
            "Share of the edge's answers that were server errors.",
            f'sum(rate(llmgw_requests_total{{status_class="5xx"}}{RATE})) / sum(rate(llmgw_requests_total{RATE}))',
            "percentunit",
        ),
        stat(
            "In flight",
            "Requests being served now: the edge's and the workers'.",
            "sum(llmgw_edge_in_flight_requests) + sum(llmgw_worker_in_flight_requests)",
        ),
        stat(
            "Metering lag",
            "Age of the oldest usage event received and not yet stored.",
            "max(llmgw_metering_lag_seconds)",
            "s",
        ),
        stat(
            "Deployments in cooldown",
            "Deployments some worker's router skips now.",
            "count(max by (deployment) (llmgw_cooldown_active) == 1) or vector(0)",
        ),
        stat(
            "Key map age",
            "Time since the oldest edge last took a change of the key map (a revoked key is refused from then on).",
            "time() - min(llmgw_key_map_last_update_timestamp_seconds)",
            "s",
        ),
    ]
    return [(4, 4, tile) for tile in tiles]


def graphs() -> list[Json]:
    return [
        series(
            "Traffic by route and status class",
            "Answers per second of the edge.",
            one(f"sum by (route, status_class) (rate(llmgw_requests_total{RATE}))", "{{route}} {{status_class}}"),
            "reqps",
        ),
        series(
            "Request duration p50 / p99",
            "From a request's first byte to its last answer byte, by route.",
            quantiles("llmgw_request_duration_seconds", "route"),
            "s",
        ),
        series(
            "Time to first token p50 / p99",
            "Streams only: to the first chunk, by route.",
            quantiles("llmgw_time_to_first_token_seconds", "route"),
            "s",
        ),
        series(
            "Upstream duration p50 / p99",
            "A request's time upstream (retries and fallbacks included), by the deployment that ended it.",
            quantiles("llmgw_upstream_duration_seconds", "deployment"),
            "s",
        ),
        series(
            "5xx answers by route",
            "Server errors the edge answered, per second.",
            one(f'sum by (route) (rate(llmgw_requests_total{{status_class="5xx"}}{RATE}))', "{{route}}"),
            "reqps",
        ),
        series(
            "Upstream errors by deployment",
            "Requests a deployment ended with an error, per second, by HTTP status class.",
            one(
                f"sum by (deployment, status_class) (rate(llmgw_upstream_errors_total{RATE}))",
                "{{deployment}} {{status_class}}",
            ),
            "reqps",
        ),
        series(
            "Refusals by reason",
            "Requests refused before a worker had them: auth, budget, rate_limit, model_access, bad_input.",
            one(f"sum by (reason) (rate(llmgw_refusals_total{RATE}))", "{{reason}}"),
            "reqps",
        ),
        series(
            "Queue depth",
            "Messages JetStream has not delivered yet, and delivered more than once and not acked, by consumer"
            " (every process that shares a consumer reports it: the highest is shown).",
            [
                prometheus_target(
                    "A", "max by (stream, consumer) (llmgw_jetstream_pending_messages)", "pending {{stream}}/{{consumer}}"
                ),
                prometheus_target(
                    "B",
                    "max by (stream, consumer) (llmgw_jetstream_redelivered_messages)",
                    "redelivered {{stream}}/{{consumer}}",
                ),
            ],
        ),
        series(
            "In flight",
            "Requests being served now, at the edge and by each worker.",
            [
                prometheus_target("A", "sum(llmgw_edge_in_flight_requests)", "edge"),
                prometheus_target("B", "sum by (instance) (llmgw_worker_in_flight_requests)", "worker {{instance}}"),
            ],
        ),
        series(
            "Metering lag",
            "Age of the oldest usage event metering received and has not stored yet (0: none waits).",
            one("max(llmgw_metering_lag_seconds)", "lag"),
            "s",
        ),
        series(
            "ClickHouse insert duration p50 / p99",
            "Time of one batch's insert of usage rows.",
            quantiles("llmgw_clickhouse_insert_duration_seconds", ""),
            "s",
        ),
        series(
            "Usage rows stored",
            "Usage rows metering inserted, per second (redeliveries are not stored twice).",
            one(f"sum(rate(llmgw_usage_rows_inserted_total{RATE}))", "rows"),
            "rowsps",
        ),
        series(
            "Key map freshness",
            "Time since each edge last took a change of its key map from the KV watch.",
            one("time() - llmgw_key_map_last_update_timestamp_seconds", "{{instance}}"),
            "s",
        ),
        series(
            "Cooldowns active",
            "1 while a deployment is in cooldown on some worker (routing skips it there).",
            one("max by (deployment) (llmgw_cooldown_active)", "{{deployment}}"),
        ),
        series(
            "Tokens by direction",
            "Tokens metered per second: prompt, completion, cached, reasoning.",
            one(f"sum by (direction) (rate(llmgw_tokens_total{RATE}))", "{{direction}}"),
        ),
        series(
            "Spend by model group",
            "US dollars metered per hour, as the usage rows have them.",
            one(f"3600 * sum by (model_group) (rate(llmgw_spend_usd_total{RATE}))", "{{model_group}}"),
            "currencyUSD",
        ),
    ]


def build() -> Json:
    return dashboard(
        UID,
        "llmgw / Operations",
        "Traffic, latency, errors, refusals, queues and health of the edge, the workers and metering (Prometheus).",
        [*stats(), *((12, 8, graph) for graph in graphs())],
    )
