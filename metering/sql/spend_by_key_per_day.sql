-- Spend by key per day (UTC days), most recent first, each key with its latest alias.
-- Parameters:
--   {days:UInt32}  how many days back, today included
SELECT
    s.day,
    s.key_hash,
    a.key_alias,
    s.requests,
    s.tokens,
    s.cost
FROM
(
    SELECT day, id AS key_hash, sum(requests) AS requests, sum(prompt_tokens + completion_tokens) AS tokens, sum(cost) AS cost
    FROM spend_daily
    WHERE dimension = 'key' AND day > today() - {days:UInt32}
    GROUP BY day, key_hash
) AS s
LEFT JOIN
(
    SELECT key_hash, argMax(key_alias, ts) AS key_alias
    FROM usage
    WHERE toDate(ts) > today() - {days:UInt32}
    GROUP BY key_hash
) AS a USING (key_hash)
ORDER BY s.day DESC, s.cost DESC
