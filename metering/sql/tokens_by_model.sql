-- Tokens and spend by model group per day (UTC), most recent first.
-- Parameters:
--   {days:UInt32}  how many days back, today included
SELECT
    day,
    id AS model_group,
    sum(requests) AS requests,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost) AS cost,
    sum(unpriced) AS unpriced_requests
FROM spend_daily
WHERE dimension = 'model' AND day > today() - {days:UInt32}
GROUP BY day, model_group
ORDER BY day DESC, prompt_tokens + completion_tokens DESC
