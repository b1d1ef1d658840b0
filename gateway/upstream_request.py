"""The message a request is published as (`UpstreamRequest`), from what the pipeline knows of it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.auth import Principal
from gateway.client_upstream import client_upstream
from gateway.exchange import Exchange
from gateway.routes import Call, Route, Target
from llmgw.contracts import UpstreamRequest

if TYPE_CHECKING:
    from gateway.edge import Edge


def upstream_request(
    edge: Edge,
    num_retries: int,
    ex: Exchange,
    route: Route,
    principal: Principal,
    call: Call,
    target: Target,
    deadline: float,
    system_prompts: list[str],
    reply_stream: str | None = None,
) -> UpstreamRequest:
    """The request for its worker (`reply_stream`: a background job's, its replies kept in JetStream)."""
    lease = ex.lease
    assert lease is not None
    deployment = lease.deployment
    extra: dict[str, Any] = {}
    if route.policies:
        extra.update(client_upstream(principal, call.body, edge.cipher))
        extra["system_prompts"] = system_prompts
        extra["fallbacks"] = [d.id for d in target.candidates if d is not deployment] + target.fallbacks
        extra["context_fallbacks"] = target.context_fallbacks
        extra["num_retries"] = num_retries
    return UpstreamRequest(
        request_id=ex.request_id,
        client_request_id=ex.client_request_id or "",
        reply_to=edge.dispatcher.reply_subject,
        operation=call.operation or route.operation,
        model_group=target.model_group,
        deployment_id=deployment.id,
        body=call.body,
        stream=call.stream,
        include_usage=call.include_usage,
        deadline=deadline,
        received_at=ex.started,
        caller=principal.caller,
        cost_cap=lease.cost_cap,
        answers=max(call.n, 1),
        ledgers=lease.ledgers,
        native=call.native,
        response_id=route.answer_id(call, ex.request_id),
        reply_stream=reply_stream,
        **extra,
    )
