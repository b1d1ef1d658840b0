-- Spend by team per day (UTC days), most recent first.
-- Parameters:
--   {days:UInt32}  how many days back, today included
SELECT
    day,
    id AS team_id,
    sum(requests) AS requests,
    sum(errors) AS errors,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens,
    sum(cost) AS cost
FROM spend_daily
WHERE dimension = 'team' AND day > today() - {days:UInt32}
GROUP BY day, team_id
ORDER BY day DESC, cost DESC
