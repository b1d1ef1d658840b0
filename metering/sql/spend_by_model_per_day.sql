-- Spend by model group per day (UTC), oldest first: one series per model group for a chart.
-- Parameters:
--   {days:UInt32}  how many days back, today included
SELECT
    day,
    id AS model_group,
    sum(cost) AS cost
FROM spend_daily
WHERE dimension = 'model' AND day > today() - {days:UInt32}
GROUP BY day, model_group
ORDER BY day, model_group
