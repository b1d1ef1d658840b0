"""Rate limits (rpm, tpm, parallel requests) of keys, users, teams and deployments, shared by all
edges through the ratelimits KV bucket.

`window` holds the record and the arithmetic of the sliding one-minute window (and why it is a
sliding window of per-second counts); `store` the watched copy of the bucket and the batched
compare-and-set writes; `limiter` admission, release and what happens when NATS is down.

    limiter = RateLimiter(js, subjects)            # fail_open=True admits while NATS is down
    await limiter.start()
    admission = await limiter.admit(limits, request_id, deadline)   # raises GatewayError 429 / 503
    ... response headers: admission.headers()
    await limiter.release(admission, tokens_used)
"""

from gateway.ratelimits.limiter import Admission, RateLimiter
from gateway.ratelimits.window import Limit, RateWindow

__all__ = ["Admission", "Limit", "RateLimiter", "RateWindow"]
