from __future__ import annotations

import httpx
import msgspec
import pytest

from llmgw.config import Deployment, Secret
from workers.providers.openai_family import (
    _OpenAIUsage,
    openai_error_to_upstream_error,
    openai_usage_to_usage,
    rewrite_body,
)
from workers.providers.request_body import RequestBody, estimate_prompt_tokens
from workers.usage import Usage, cost_of

pytestmark = pytest.mark.unit

DEPLOYMENT = Deployment(
    id="d/0",
    model_name="d",
    provider="openai",
    upstream_model="gpt-4o",
    api_base="http://x/v1",
    api_key=Secret("sk-live-secret-42"),
    input_cost_per_token=1e-6,
    output_cost_per_token=2e-6,
)


def test_usage_converter_reads_cached_and_reasoning_tokens():
    raw = b'{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":2}}'
    assert openai_usage_to_usage(msgspec.json.decode(raw, type=_OpenAIUsage)) == Usage(10, 4, 6, 2)


def test_rewrite_sets_upstream_model_and_asks_for_usage_on_streams():
    body = b'{"model":"gpt-4","messages":[],"stream":true,"stream_options":{"include_usage":false},"tools":[1]}'
    out = msgspec.json.decode(rewrite_body(RequestBody(body), "gpt-4o", stream=True))
    assert out["model"] == "gpt-4o" and out["stream_options"] == {"include_usage": True} and out["tools"] == [1]
    assert "stream_options" not in msgspec.json.decode(rewrite_body(RequestBody(b'{"model":"a"}'), "b", stream=False))


@pytest.mark.parametrize(
    ("status", "client_status"), [(400, 400), (404, 404), (422, 422), (429, 429), (401, 502), (403, 502), (500, 502), (503, 502)]
)
def test_upstream_errors_map_to_client_statuses(status, client_status):
    body = b'{"error":{"message":"bad key sk-live-secret-42","type":"invalid_request_error","code":"x","param":"p"}}'
    err = openai_error_to_upstream_error(status, body, httpx.Headers({"retry-after": "3"}), DEPLOYMENT)
    assert err.status == client_status
    assert "sk-live-secret-42" not in err.message
    if status == 429:
        assert err.retry_after == 3.0
    if status == 400:
        assert err.param == "p" and err.message == "bad key ***"


def test_non_json_error_body_is_kept_readable():
    err = openai_error_to_upstream_error(502, b"<html>bad gateway</html>", httpx.Headers(), DEPLOYMENT)
    assert err.status == 502 and "bad gateway" in err.message


def test_cost_and_estimates():
    assert cost_of(Usage(1000, 500), DEPLOYMENT, "gpt-4o") == (pytest.approx(0.002), True)
    unpriced = msgspec.structs.replace(DEPLOYMENT, input_cost_per_token=None, output_cost_per_token=None)
    assert cost_of(Usage(1000, 500), unpriced, "my-own-model") == (0.0, False)
    # from the shipped table: gpt-4o at $2.50 / $10 per 1M tokens, cached input at $1.25
    listed, known = cost_of(Usage(1_000_000, 100_000, cached_tokens=400_000), unpriced, "gpt-4o-2024-08-06")
    assert known and listed == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10.0)
    assert estimate_prompt_tokens(RequestBody(b'{"messages":[{"role":"user","content":"12345678"}]}')) == 2
