"""The OpenAI-compatible API end to end, driven by the official `openai` SDK."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "Hello, how are you?"}]


def chat(stack, **kwargs):
    raw = stack.client().chat.completions.with_raw_response.create(**kwargs)
    return raw.headers["x-request-id"], raw.parse()


def test_chat_completion_answers_and_meters_exact_usage(stack):
    request_id, completion = chat(stack, model="gpt-4", messages=HELLO, max_tokens=5)
    assert completion.choices[0].message.content == "w0 w1 w2 w3 w4"
    assert completion.choices[0].finish_reason == "length"
    # The fake counts 4 words + 1 message of prompt, and one token per word of answer.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 5)

    row = stack.usage_rows([request_id])[request_id]
    assert row["prompt_tokens"] == 5 and row["completion_tokens"] == 5
    assert row["model_group"] == "gpt-4" and row["upstream_model"] == "gpt-4o" and row["provider"] == "openai"
    assert row["status"] == "success" and row["http_status"] == 200 and row["usage_source"] == "provider"
    assert row["stream"] in (0, False)


def test_paths_of_seed_000_and_001_serve_the_same_api(stack):
    for path in ("/chat/completions", "/openai/chat/completions", "/openai/v1/chat/completions"):
        resp = httpx.post(
            stack.base_url + path,
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "gpt-3.5-turbo", "messages": HELLO},
            timeout=10,
        )
        assert resp.status_code == 200, (path, resp.text)
        assert resp.json()["object"] == "chat.completion"
    sdk = openai.OpenAI(base_url=f"{stack.base_url}/openai", api_key=MASTER_KEY, max_retries=0)
    assert sdk.chat.completions.create(model="gpt-4", messages=HELLO).choices[0].message.content


def test_stream_arrives_incrementally_and_ends_with_usage(stack):
    raw = stack.client().chat.completions.with_raw_response.create(
        model="chunky", messages=HELLO, max_tokens=6, stream=True, stream_options={"include_usage": True}
    )
    request_id = raw.headers["x-request-id"]
    arrivals, chunks = [], []
    for chunk in raw.parse():
        arrivals.append(time.monotonic())
        chunks.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5"
    # The fake waits 60 ms between chunks: they must reach the client spread out, not all at once.
    assert arrivals[-1] - arrivals[0] > 0.2
    first_content = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content)
    assert arrivals[-1] - arrivals[first_content] > 0.2
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 6)

    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (5, 6)
    assert row["stream"] in (1, True) and row["status"] == "success" and row["ttft_ms"] is not None


def test_stream_without_include_usage_has_no_usage_chunk_but_is_metered(stack):
    raw = stack.client().chat.completions.with_raw_response.create(model="gpt-4", messages=HELLO, max_tokens=3, stream=True)
    chunks = list(raw.parse())
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "w0 w1 w2"
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (5, 3)


def test_embeddings(stack):
    raw = stack.client().embeddings.with_raw_response.create(model="gpt-4", input=["hello world", "one two three"])
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) == 8
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert row["prompt_tokens"] == result.usage.prompt_tokens == 5
    assert row["operation"] == "embeddings"


def test_models_lists_the_configured_groups(stack):
    ids = {m.id for m in stack.client().models.list()}
    assert {"gpt-4", "gpt-3.5-turbo", "slow", "err-429"} <= ids


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": 7, "messages": HELLO}, "model"),
        ({"model": "gpt-4", "messages": []}, "messages"),
        ({"model": "gpt-4", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"model": "gpt-4", "messages": HELLO, "max_tokens": "many"}, "max_tokens"),
        ({"messages": HELLO}, "model"),
    ],
)
def test_wrong_fields_are_400_naming_the_field(stack, body, param):
    resp = httpx.post(f"{stack.base_url}/v1/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"}, json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == param
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_bad_json_is_400(stack):
    resp = httpx.post(
        f"{stack.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
        content=b'{"model": "gpt-4", "messages": [',
    )
    assert resp.status_code == 400
    assert "Invalid JSON" in resp.json()["error"]["message"]


def test_unknown_model_is_404(stack):
    with pytest.raises(openai.NotFoundError) as err:
        stack.client().chat.completions.create(model="no-such-model", messages=HELLO)
    assert err.value.code == "model_not_found"


def test_missing_or_wrong_key_is_401(stack):
    bad = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4", messages=HELLO)
    resp = httpx.post(f"{stack.base_url}/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("err-400", openai.BadRequestError, 400),
        ("err-404", openai.NotFoundError, 404),
        ("err-429", openai.RateLimitError, 429),
        ("err-500", openai.APIStatusError, 502),
        ("err-503", openai.APIStatusError, 502),
        ("err-401", openai.APIStatusError, 502),  # the upstream refused *our* credential
        ("unreachable", openai.APIStatusError, 502),
    ],
)
def test_upstream_errors_map_to_the_right_status(stack, model, error, status):
    with pytest.raises(error) as err:
        stack.client().chat.completions.with_raw_response.create(model=model, messages=HELLO)
    assert err.value.status_code == status
    assert UPSTREAM_KEY not in err.value.response.text
    request_id = err.value.response.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert row["http_status"] == status and row["status"] == "upstream_error"
    assert row["prompt_tokens"] == 0 and row["completion_tokens"] == 0
    if model == "err-400":
        assert err.value.body["message"] == "fake bad request" and err.value.body["param"] == "messages"
    if model == "err-429":
        assert err.value.response.headers.get("retry-after") == "1"


def test_error_after_stream_started_is_a_final_sse_error_event(stack):
    raw = stack.client().chat.completions.with_raw_response.create(
        model="stream-fail", messages=HELLO, max_tokens=10, stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in raw.parse():
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received).startswith("w0")
    assert "ended the stream early" in str(err.value) or "broke off" in str(err.value)
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    # The provider never reported usage: the words relayed are counted and marked as estimated.
    assert row["usage_source"] == "estimated" and row["completion_tokens"] >= 3
    assert row["status"] == "upstream_error"


def test_no_provider_key_in_any_log_line(stack):
    chat(stack, model="gpt-4", messages=HELLO)
    logs = stack.logs()
    assert "request" in logs
    assert UPSTREAM_KEY not in logs and MASTER_KEY not in logs
