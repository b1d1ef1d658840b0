-- The teams that spent the most over the last days (UTC), with their share of all teams' spend.
-- Parameters:
--   {days:UInt32}  how many days back, today included
--   {limit:UInt32}  how many teams
SELECT
    team_id,
    requests,
    tokens,
    cost,
    round(toFloat64(cost) / nullIf(toFloat64(sum(cost) OVER ()), 0), 4) AS share
FROM
(
    SELECT id AS team_id, sum(requests) AS requests, sum(prompt_tokens + completion_tokens) AS tokens, sum(cost) AS cost
    FROM spend_daily
    WHERE dimension = 'team' AND day > today() - {days:UInt32}
    GROUP BY team_id
)
ORDER BY cost DESC
LIMIT {limit:UInt32}
