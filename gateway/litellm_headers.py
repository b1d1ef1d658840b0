"""LiteLLM's response headers, sent next to llmgw's own (`x-request-id`, the rate-limit headers),
so dashboards and scripts that read them keep working: `x-litellm-call-id` (llmgw's request id,
by which `/spend/logs?request_id=` finds the request), `x-litellm-model-id` (the deployment that
answered), `x-litellm-model-group`, `x-litellm-attempted-retries` (upstream calls before the one
that answered) and, on whole answers, `x-litellm-response-cost` (USD, as the request's usage row
has it; a stream's cost is known only at its end, after its headers went out)."""

from __future__ import annotations

from llmgw.contracts import Reply
from llmgw.money import decimal_text


def litellm_headers(request_id: str, model_group: str, deployment_id: str, reply: Reply) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-litellm-call-id", request_id.encode()),
        (b"x-litellm-model-id", (reply.deployment_id or deployment_id).encode()),
        (b"x-litellm-model-group", model_group.encode("utf-8", "replace")),
        (b"x-litellm-attempted-retries", str(max(reply.tries - 1, 0)).encode()),
    ]
    if reply.cost is not None:
        headers.append((b"x-litellm-response-cost", decimal_text(reply.cost).encode()))
    return headers
