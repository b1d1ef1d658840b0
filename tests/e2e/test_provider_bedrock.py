"""AWS Bedrock through the whole gateway (edge, worker, metering as processes), driven by the
official `openai` SDK, in front of the fake Bedrock runtime (bench/fake_bedrock.py) that checks
every request's SigV4 signature with the secret the gateway was configured with."""

from __future__ import annotations

import json

import openai
import pytest

from bench.fake_bedrock import DEFAULT_ACCESS_KEY_ID
from tests.e2e.stack import Stack
from tests.procs import FakeUpstream

pytestmark = pytest.mark.e2e

UPSTREAM_SECRET = "provider-secret-key-123"
WRONG_SECRET = "stale-aws-secret-key-4567"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
HELLO = [{"role": "user", "content": "Hello, how are you?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


def _group(name: str, model: str, base: str, secret: str = "os.environ/E2E_UPSTREAM_KEY") -> str:
    return (
        f"  - model_name: {name}\n    params:\n      model: bedrock/{model}\n"
        f"      aws_access_key_id: {DEFAULT_ACCESS_KEY_ID}\n      aws_secret_access_key: {secret}\n"
        f"      aws_region_name: us-east-1\n      api_base: {base}\n"
    )


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    f = FakeUpstream(tmp_path_factory.mktemp("up"), UPSTREAM_SECRET, module="bench.fake_bedrock").start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def stack(nats_server, fake, tmp_path_factory):
    config = (
        "model_list:\n"
        + _group("claude", CLAUDE, fake.root_url)
        + _group("titan", "amazon.titan-embed-text-v2:0", fake.root_url)
        + _group("claude-invalid", "fake-error-400", fake.root_url)
        + _group("claude-stale-key", CLAUDE, fake.root_url, secret=WRONG_SECRET)
        + "general_settings:\n  master_key: os.environ/E2E_MASTER_KEY\n"
    )
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2eprovbedrock", fake, {}, config=config).start()
    yield s
    s.stop()


def test_chat_completion_and_its_usage_row(stack):
    raw = stack.client().chat.completions.with_raw_response.create(model="claude", messages=HELLO, max_tokens=5)
    completion = raw.parse()
    assert completion.choices[0].message.content == "w0 w1 w2 w3 w4"
    assert completion.choices[0].finish_reason == "length"
    # the fake counts 4 words + 1 message of prompt and one token per word of answer
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 5)
    rid = raw.headers["x-request-id"]
    row = stack.usage_rows([rid])[rid]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (5, 5)
    assert row["provider"] == "bedrock" and row["upstream_model"] == CLAUDE and row["model_group"] == "claude"
    assert row["status"] == "success" and row["http_status"] == 200 and row["usage_source"] == "provider"


def test_stream_with_usage(stack):
    raw = stack.client().chat.completions.with_raw_response.create(
        model="claude", messages=HELLO, max_tokens=6, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w0 w1 w2 w3 w4 w5"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 6)
    rid = raw.headers["x-request-id"]
    row = stack.usage_rows([rid])[rid]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (5, 6)
    assert row["stream"] in (1, True) and row["status"] == "success"


def test_tool_call_round_trip(stack):
    client = stack.client()
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL])
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "Paris"}

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 22 C"},
    ]
    second = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER_TOOL], max_tokens=3)
    assert second.choices[0].message.content == "w0 w1 w2" and second.choices[0].finish_reason == "length"

    stream = client.chat.completions.create(model="claude", messages=messages[:1], tools=[WEATHER_TOOL], stream=True)
    calls = [tc for chunk in stream if chunk.choices for tc in chunk.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "get_weather"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"location": "Paris"}


def test_embeddings_and_their_usage_row(stack):
    raw = stack.client().embeddings.with_raw_response.create(
        model="titan", input=["hello world", "one two three"], dimensions=256
    )
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) == 256
    assert result.usage.prompt_tokens == 5
    rid = raw.headers["x-request-id"]
    row = stack.usage_rows([rid])[rid]
    assert row["prompt_tokens"] == 5 and row["operation"] == "embeddings" and row["provider"] == "bedrock"


def test_errors_reach_the_client_and_are_metered(stack, fake):
    client = stack.client()
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.with_raw_response.create(model="claude-invalid", messages=HELLO)
    assert "fake-error-400" in bad.value.message
    failures = fake.stats()["auth_failures"]
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="claude-stale-key", messages=HELLO)
    assert refused.value.status_code == 502
    assert WRONG_SECRET not in str(refused.value.body) and UPSTREAM_SECRET not in str(refused.value.body)
    assert fake.stats()["auth_failures"] > failures  # the fake recomputed the signature and refused it
    rid = refused.value.response.headers["x-request-id"]
    row = stack.usage_rows([rid])[rid]
    assert row["http_status"] == 502 and row["status"] == "upstream_error" and row["provider"] == "bedrock"
