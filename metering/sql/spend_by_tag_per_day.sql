-- Requests, tokens and spend by request tag per day (UTC), most recent first (a request with
-- several tags counts for each; untagged requests are left out).
-- Parameters:
--   {days:UInt32}  how many days back, today included
SELECT
    toDate(ts) AS day,
    arrayJoin(tags) AS tag,
    count() AS requests,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cost) AS cost
FROM usage FINAL
WHERE toDate(ts) > today() - {days:UInt32}
GROUP BY day, tag
ORDER BY day DESC, cost DESC, tag
