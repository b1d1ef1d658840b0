-- Budget burn: each team's spend added up hour by hour over the last hours (UTC), oldest first,
-- so the slope of a team's line is how fast it is using up its budget.
-- Parameters:
--   {hours:UInt32}  how many hours back, the current hour included
SELECT
    hour,
    id AS team_id,
    sum(sum(cost)) OVER (PARTITION BY team_id ORDER BY hour) AS spent
FROM spend_hourly
WHERE dimension = 'team' AND hour > toStartOfHour(now()) - INTERVAL {hours:UInt32} HOUR
GROUP BY hour, team_id
ORDER BY hour, team_id
