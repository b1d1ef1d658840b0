"""What `/v1/messages` and count_tokens do to a request on its way to an Anthropic deployment (the
betas kept, the client's headers, the policy prompts and a capped `max_tokens` put in by the
worker) and how a worker counts a request's text for the other deployments."""

from __future__ import annotations

import msgspec
import pytest

from gateway.anthropic_messages.forwarding import anthropic_headers, kept_betas, native_call
from gateway.errors import GatewayError
from llmgw.tokens import count_many
from workers.providers.messages_body import estimated_input_tokens, forwarded_body, request_texts

pytestmark = pytest.mark.unit


def scope(*headers: tuple[bytes, bytes], query: bytes = b"") -> dict:
    return {"headers": list(headers), "query_string": query}


def test_betas_that_reach_into_the_shared_account_are_dropped():
    assert kept_betas("claude-code-20250219, oauth-2025-04-20,files-api-2025-04-14") == "claude-code-20250219"
    assert kept_betas("mcp-client-2025-04-04,code-execution-2025-08-25,skills-2025-10-02") == ""
    assert kept_betas("interleaved-thinking-2025-05-14,context-management-2025-06-27") == (
        "interleaved-thinking-2025-05-14,context-management-2025-06-27"
    )


def test_only_anthropic_version_and_kept_betas_are_forwarded():
    headers = anthropic_headers(
        scope(
            (b"anthropic-version", b"2023-06-01"),
            (b"anthropic-beta", b"oauth-2025-04-20"),
            (b"anthropic-beta", b"effort-2025-11-24"),
            (b"x-api-key", b"sk-virtual"),
            (b"cookie", b"a=b"),
        )
    )
    assert headers == [("anthropic-version", "2023-06-01"), ("anthropic-beta", "effort-2025-11-24")]
    assert anthropic_headers(scope((b"anthropic-beta", b"oauth-2025-04-20"))) == []
    with pytest.raises(GatewayError) as info:
        anthropic_headers(scope((b"anthropic-beta", b"a\r\nx-evil: 1")))
    assert info.value.status == 400


def test_the_beta_query_of_the_sdk_goes_along_and_nothing_else():
    assert native_call(scope(query=b"beta=true"), "/v1/messages").query == "beta=true"
    assert native_call(scope(query=b"key=sk-x"), "/v1/messages").query == ""
    assert native_call(scope(), "/v1/messages/count_tokens").path == "/v1/messages/count_tokens"


def test_the_worker_puts_policy_prompts_first_and_caps_max_tokens():
    body = msgspec.json.encode({"model": "claude", "max_tokens": 500, "system": "own", "messages": []})
    sent = msgspec.json.decode(forwarded_body(body, "claude-3-5-sonnet-20241022", ["policy one", "policy two"], 40))
    assert sent["model"] == "claude-3-5-sonnet-20241022" and sent["max_tokens"] == 40
    assert sent["system"] == [
        {"type": "text", "text": "policy one"},
        {"type": "text", "text": "policy two"},
        {"type": "text", "text": "own"},
    ]
    kept = msgspec.json.decode(forwarded_body(body, "m", [], 1000))
    assert kept["max_tokens"] == 500 and kept["system"] == "own"


def test_the_text_a_request_counts_by():
    data = {
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "system", "content": "between"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": "ls"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "a.txt"}]},
                    {"type": "image", "source": {"type": "url", "url": "http://i"}},
                ],
            },
        ],
        "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}],
    }
    texts = request_texts(data)
    assert texts == ["sys", "hello", "between", "hmm", "Bash", '{"command":"ls"}', "a.txt", "Bash", "run", '{"type":"object"}']
    body = msgspec.json.encode(data)
    assert estimated_input_tokens(body, ["policy"], "gpt-4o") == sum(count_many(["policy", *texts], "gpt-4o"))
    assert estimated_input_tokens(b"not json", [], "gpt-4o") == 0
