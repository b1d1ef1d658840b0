-- llmgw's metering against the providers' own records (provider_usage, read by the reconciler),
-- per provider, model (without its snapshot date) and hour, newest first: requests, tokens and
-- cost on each side and the relative drift; `outside` counts what was billed on provider keys or
-- projects llmgw does not send with (LLMGW_RECONCILE_<PROVIDER>_KEY_IDS).
-- Parameters:
--   {days:UInt32}           how many days back, today included
--   {drift_percent:UInt32}  relative drift (in %) above which a line says `drift`
SELECT
    hour,
    provider,
    model,
    multiIf(m.requests = 0, 'outside', b.billed_tokens = 0, 'unbilled',
            abs(m.tokens - b.billed_tokens) * 100 > {drift_percent:UInt32} * b.billed_tokens, 'drift', 'ok') AS kind,
    m.requests AS metered_requests,
    b.billed_requests,
    m.tokens AS metered_tokens,
    b.billed_tokens,
    round((toInt64(m.tokens) - toInt64(b.billed_tokens)) / nullIf(b.billed_tokens, 0), 4) AS token_drift_relative,
    m.cost AS metered_cost,
    b.billed_cost,
    round((m.cost - b.billed_cost) / nullIf(b.billed_cost, 0), 4) AS cost_drift_relative,
    b.outside_tokens
FROM
(
    SELECT provider, replaceRegexpOne(upstream_model, '-(\\d{4}-\\d{2}-\\d{2}|\\d{8})$', '') AS model,
           toStartOfHour(ts) AS hour, count() AS requests,
           sum(prompt_tokens) + sum(completion_tokens) AS tokens, toFloat64(sum(cost)) AS cost
    FROM usage FINAL
    WHERE toDate(ts) > today() - {days:UInt32} AND status IN ('success', 'budget_stopped', 'cancelled')
    GROUP BY provider, model, hour
) AS m
FULL OUTER JOIN
(
    SELECT provider, model, hour,
           sumIf(assumeNotNull(requests), ours) AS billed_requests,
           sumIf(input_tokens + output_tokens, ours) AS billed_tokens,
           toFloat64(sumIf(assumeNotNull(cost), ours)) AS billed_cost,
           sumIf(input_tokens + output_tokens, NOT ours) AS outside_tokens
    FROM provider_usage FINAL
    WHERE toDate(hour) > today() - {days:UInt32}
    GROUP BY provider, model, hour
) AS b
USING (provider, model, hour)
ORDER BY hour DESC, provider, model
