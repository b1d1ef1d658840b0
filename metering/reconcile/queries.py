"""The reconciliation's named queries: llmgw's metering (`usage`) against the providers' own
records (`provider_usage`, `provider_prices`), per provider, model and hour.

A model is compared by its name without a snapshot date (`gpt-4o-2024-08-06` and `gpt-4o` are one
model; so are `claude-sonnet-4-5-20250929` and `claude-sonnet-4-5`): providers report the dated
snapshot that answered, llmgw meters the name it was asked for. Only the providers whose reports
were read are compared (a provider without reconciliation has no `provider_usage` rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from metering.query_errors import NamedQueryError

# A snapshot date at the end of a model's name: -2024-08-06 (OpenAI) or -20250929 (Anthropic).
MODEL_DATE = r"-(\d{4}-\d{2}-\d{2}|\d{8})$"
# What a provider bills: requests that reached it and ended (a cancelled stream is billed for
# what it read; a refusal, an expired request or an upstream error is not billed).
BILLED_STATUSES = ("success", "budget_stopped", "cancelled")
_MODEL_DATE_SQL = MODEL_DATE.replace("\\", "\\\\")  # in a SQL string literal
_STATUSES_SQL = ", ".join(f"'{s}'" for s in BILLED_STATUSES)
MAX_THRESHOLD = 1000.0

_METERED = f"""
SELECT provider, replaceRegexpOne(upstream_model, '{_MODEL_DATE_SQL}', '') AS model,
       toStartOfHour(ts) AS hour, 1 AS present,
       count() AS requests, sum(prompt_tokens) AS input_tokens, sum(completion_tokens) AS output_tokens,
       toFloat64(sum(cost)) AS cost
FROM usage FINAL
WHERE ts >= {{start:DateTime('UTC')}} AND ts < {{end:DateTime('UTC')}}
  AND status IN ({_STATUSES_SQL})
  AND provider IN (SELECT DISTINCT provider FROM provider_usage)
  AND ({{provider:String}} = '' OR provider = {{provider:String}})
GROUP BY provider, model, hour
"""

_BILLED = """
SELECT provider, model, hour, 1 AS present,
       if(countIf(requests IS NULL) = 0, sum(assumeNotNull(requests)), NULL) AS requests,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       if(countIf(cost IS NULL) = 0, toFloat64(sum(assumeNotNull(cost))), NULL) AS cost
FROM provider_usage FINAL
WHERE ours AND hour >= {start:DateTime('UTC')} AND hour < {end:DateTime('UTC')}
  AND ({provider:String} = '' OR provider = {provider:String})
GROUP BY provider, model, hour
"""

_OUTSIDE = """
SELECT provider, model, formatDateTime(billed_hour, '%Y-%m-%dT%H:00:00Z') AS hour, 'outside' AS kind, account,
       toUInt64(0) AS metered_requests, sum(requests) AS billed_requests,
       toUInt64(0) AS metered_input_tokens, sum(input_tokens) AS billed_input_tokens,
       toUInt64(0) AS metered_output_tokens, sum(output_tokens) AS billed_output_tokens,
       toFloat64(0) AS metered_cost, toFloat64(sum(cost)) AS billed_cost,
       -toInt64(billed_input_tokens + billed_output_tokens) AS token_drift,
       if(billed_input_tokens + billed_output_tokens > 0, toNullable(toFloat64(-1)), NULL) AS token_drift_relative,
       -billed_cost AS cost_drift, if(billed_cost > 0, toNullable(toFloat64(-1)), NULL) AS cost_drift_relative
FROM (
    SELECT provider, model, hour AS billed_hour, if(api_key_id != '', api_key_id, project_id) AS account,
           requests, input_tokens, output_tokens, cost
    FROM provider_usage FINAL
    WHERE NOT ours AND hour >= {start:DateTime('UTC')} AND hour < {end:DateTime('UTC')}
      AND ({provider:String} = '' OR provider = {provider:String})
)
GROUP BY provider, model, billed_hour, account
"""

RECONCILIATION_SQL = f"""
SELECT * FROM (
WITH metered AS ({_METERED}), billed AS ({_BILLED}),
joined AS (
    SELECT provider, model, hour, m.present AS metered, b.present AS billed,
           m.requests AS metered_requests, b.requests AS billed_requests,
           m.input_tokens AS metered_input_tokens, b.input_tokens AS billed_input_tokens,
           m.output_tokens AS metered_output_tokens, b.output_tokens AS billed_output_tokens,
           m.cost AS metered_cost, b.cost AS billed_cost,
           toInt64(m.input_tokens + m.output_tokens) - toInt64(b.input_tokens + b.output_tokens) AS token_drift,
           token_drift / nullIf(b.input_tokens + b.output_tokens, 0) AS token_drift_relative,
           m.cost - b.cost AS cost_drift,
           cost_drift / nullIf(b.cost, 0) AS cost_drift_relative
    FROM metered AS m FULL OUTER JOIN billed AS b USING (provider, model, hour)
)
SELECT provider, model, formatDateTime(hour, '%Y-%m-%dT%H:00:00Z') AS hour,
       multiIf(
           metered = 0, 'outside',
           billed = 0 OR billed_input_tokens + billed_output_tokens = 0, 'unbilled',
           abs(ifNull(token_drift_relative, 0)) > {{threshold:Float64}}
               OR abs(ifNull(cost_drift_relative, 0)) > {{threshold:Float64}}
               OR ifNull(billed_requests != metered_requests, 0), 'drift',
           'ok') AS kind,
       '' AS account,
       metered_requests, if(billed = 0, NULL, billed_requests) AS billed_requests,
       metered_input_tokens, billed_input_tokens, metered_output_tokens, billed_output_tokens,
       metered_cost, if(billed = 0, NULL, billed_cost) AS billed_cost,
       token_drift, token_drift_relative, if(billed = 0, NULL, cost_drift) AS cost_drift,
       if(billed = 0, NULL, cost_drift_relative) AS cost_drift_relative
FROM joined
UNION ALL
{_OUTSIDE}
)
ORDER BY hour, provider, model, kind, account
"""

STALE_PRICES_SQL = """
SELECT provider, model, token_type, toString(priced_day) AS day, tokens, provider_price, llmgw_price,
       (llmgw_price - provider_price) / provider_price AS difference_relative
FROM (
    SELECT provider, model, token_type, day AS priced_day, tokens,
           toFloat64(provider_cost) / tokens * 1000000 AS provider_price,
           assumeNotNull(llmgw_price) * 1000000 AS llmgw_price
    FROM provider_prices FINAL
    WHERE day >= toDate({start:DateTime('UTC')}) AND day <= toDate({end:DateTime('UTC')} - 1)
      AND ({provider:String} = '' OR provider = {provider:String})
      AND tokens > 0 AND provider_cost > 0 AND llmgw_price IS NOT NULL
)
WHERE abs((llmgw_price - provider_price) / provider_price) > {threshold:Float64}
ORDER BY provider, model, token_type, day
"""


def _hour(parameters: Mapping[str, object], name: str) -> str:
    """An ISO 8601 time (UTC when it names no zone) as ClickHouse reads a DateTime."""
    value = parameters.get(name)
    try:
        if not isinstance(value, str):
            raise ValueError
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise NamedQueryError(f"parameter {name!r}: expected a time as YYYY-MM-DDTHH:MM:SSZ, got {value!r}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def _bound(parameters: Mapping[str, object]) -> dict[str, object]:
    unknown = sorted(set(parameters) - {"start", "end", "threshold", "provider"})
    if unknown:
        raise NamedQueryError(f"unknown parameter(s) {', '.join(unknown)}; this query takes end, provider, start, threshold")
    threshold = parameters.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= MAX_THRESHOLD:
        raise NamedQueryError(f"parameter 'threshold': expected a number from 0 to {MAX_THRESHOLD:g}, got {threshold!r}")
    provider = parameters.get("provider") or ""
    if not isinstance(provider, str):
        raise NamedQueryError(f"parameter 'provider': expected a string, got {provider!r}")
    return {
        "start": _hour(parameters, "start"),
        "end": _hour(parameters, "end"),
        "threshold": float(threshold),
        "provider": provider,
    }


def reconciliation(parameters: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """Per (provider, model, hour): metered and billed requests, tokens and cost, the drift, and
    the line's kind; then the outside traffic per provider key or project."""
    return RECONCILIATION_SQL, _bound(parameters)


def stale_prices(parameters: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """Per (provider, model, token type, day): the price the provider charged and llmgw's, where
    they differ by more than the threshold."""
    return STALE_PRICES_SQL, _bound(parameters)
