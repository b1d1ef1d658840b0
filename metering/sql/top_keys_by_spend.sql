-- The keys that spent the most over the last days (UTC), with their latest alias.
-- Parameters:
--   {days:UInt32}  how many days back, today included
--   {limit:UInt32}  how many keys
SELECT
    s.key_hash,
    a.key_alias,
    s.requests,
    s.tokens,
    s.cost
FROM
(
    SELECT id AS key_hash, sum(requests) AS requests, sum(prompt_tokens + completion_tokens) AS tokens, sum(cost) AS cost
    FROM spend_daily
    WHERE dimension = 'key' AND day > today() - {days:UInt32}
    GROUP BY key_hash
    ORDER BY cost DESC
    LIMIT {limit:UInt32}
) AS s
LEFT JOIN
(
    SELECT key_hash, argMax(key_alias, ts) AS key_alias
    FROM usage
    WHERE toDate(ts) > today() - {days:UInt32}
    GROUP BY key_hash
) AS a USING (key_hash)
ORDER BY s.cost DESC
