"""A usage row for every request the edge refuses after it knew who was calling.

A request refused before it reached a worker (a bad body 400, a model the key may not use 403, an
unknown model 404, a body too large 413, a limit or budget 429, the bus down 503) has no worker to
meter it, so the edge publishes its usage event itself: status `refused`, the HTTP status and error
code, cost 0. An operator then sees who tried what. Unauthenticated 401s are not rows (anyone can
send those); they are log lines.
"""

from __future__ import annotations

import structlog

from gateway.auth import Principal
from llmgw.bus import AckedPublisher
from llmgw.contracts import MSG_ID_HEADER, Subjects, UsageEvent, UsageSource, UsageStatus, encode_json

log = structlog.get_logger()

REFUSED_STATUSES = frozenset({400, 403, 404, 413, 429, 503})
PUBLISH_TIMEOUT = 2.0
NO_PROVIDER = "none"  # the subject token of a refusal before any deployment was chosen


def refused_event(
    request_id: str,
    received_at: float,
    principal: Principal,
    operation: str,
    model: str,
    provider: str | None,
    status: int,
    code: str | None,
    latency_ms: float,
    client_request_id: str = "",
) -> UsageEvent:
    caller = principal.caller
    return UsageEvent(
        request_id=request_id,
        client_request_id=client_request_id,
        ts=received_at,
        key_hash=caller.key_hash,
        key_alias=caller.key_alias,
        user_id=caller.user_id,
        team_id=caller.team_id,
        tags=caller.tags,
        end_user=caller.end_user,
        operation=operation,
        model_group=model,
        deployment_id="",
        provider=provider or "",
        upstream_model="",
        cost=0.0,
        latency_ms=latency_ms,
        status=UsageStatus.REFUSED,
        http_status=status,
        error_code=code,
        usage_source=UsageSource.NONE,
        stream=False,
    )


async def publish_refusal(publisher: AckedPublisher, subjects: Subjects, event: UsageEvent) -> None:
    """Store the refusal's row in the usage stream (at most once per request id); a bus that is
    down loses it, with a warning: the client was answered either way."""
    subject = subjects.usage(event.provider or NO_PROVIDER, UsageStatus.REFUSED)
    try:
        await publisher.publish(subject, encode_json(event), {MSG_ID_HEADER: event.request_id}, PUBLISH_TIMEOUT)
    except Exception as exc:
        log.warning("refusal_publish_failed", request_id=event.request_id, error=str(exc) or type(exc).__name__)
