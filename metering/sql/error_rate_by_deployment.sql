-- Error rate by deployment over the last hours: every status that is not a success, and the
-- most frequent error code.
-- Parameters:
--   {hours:UInt32}  how many hours back
SELECT
    deployment_id,
    any(provider) AS provider,
    count() AS requests,
    countIf(status != 'success') AS errors,
    round(errors / requests, 4) AS error_rate,
    countIf(status = 'upstream_error') AS upstream_errors,
    countIf(status = 'cancelled') AS cancelled,
    topKIf(1)(error_code, error_code IS NOT NULL)[1] AS top_error_code
FROM usage FINAL
WHERE ts >= now64(3) - INTERVAL {hours:UInt32} HOUR
GROUP BY deployment_id
ORDER BY error_rate DESC, requests DESC
