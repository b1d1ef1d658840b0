-- Latency of successful requests by deployment over the last hours: p50 / p99 of the whole
-- request and of the time to first token (streams only).
-- Parameters:
--   {hours:UInt32}  how many hours back
SELECT
    deployment_id,
    any(provider) AS provider,
    count() AS requests,
    round(quantileExact(0.5)(latency_ms), 1) AS p50_ms,
    round(quantileExact(0.99)(latency_ms), 1) AS p99_ms,
    round(quantileExactIf(0.5)(ttft_ms, ttft_ms IS NOT NULL), 1) AS ttft_p50_ms,
    round(quantileExactIf(0.99)(ttft_ms, ttft_ms IS NOT NULL), 1) AS ttft_p99_ms
FROM usage FINAL
WHERE ts >= now64(3) - INTERVAL {hours:UInt32} HOUR AND status = 'success'
GROUP BY deployment_id
ORDER BY requests DESC
