"""An Anthropic deployment end to end: the official `openai` SDK -> gateway -> worker -> the fake
Anthropic Messages API (bench/fake_anthropic.py), and the usage rows in ClickHouse."""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.stack import Stack
from tests.procs import FakeUpstream

pytestmark = pytest.mark.e2e

ANTHROPIC_KEY = "sk-ant-provider-e2e-secret-8080"
HELLO = [{"role": "user", "content": "Hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory):
    f = FakeUpstream(tmp_path_factory.mktemp("up"), ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def stack(nats_server, fake, tmp_path_factory: pytest.TempPathFactory):
    groups = {"claude": "claude-x", "claude-busy": "fake-overloaded", "claude-bad": "fake-error-400"}
    lines = ["model_list:"]
    for name, upstream in groups.items():
        lines += [
            f"  - model_name: {name}",
            "    params:",
            f"      model: anthropic/{upstream}",
            f"      api_base: {fake.root_url}",
            "      api_key: os.environ/E2E_UPSTREAM_KEY",
        ]
    lines += ["general_settings:", "  master_key: os.environ/E2E_MASTER_KEY", ""]
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2eprovanthropic", fake, {}, config="\n".join(lines)).start()
    yield s
    s.stop()


def chat(stack: Stack, **kwargs):
    raw = stack.client().chat.completions.with_raw_response.create(**kwargs)
    return raw.headers["x-request-id"], raw.parse()


def test_chat_answers_and_meters_exact_usage(stack):
    request_id, completion = chat(stack, model="claude", messages=HELLO, max_tokens=5)
    assert completion.choices[0].message.content == "w0 w1 w2 w3 w4"
    assert completion.choices[0].finish_reason == "length"
    # the fake counts 2 words + 1 message of prompt, one token per word of answer
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 5)
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 5)
    assert row["provider"] == "anthropic" and row["upstream_model"] == "claude-x" and row["model_group"] == "claude"
    assert row["status"] == "success" and row["http_status"] == 200 and row["usage_source"] == "provider"


def test_stream_with_usage(stack):
    raw = stack.client().chat.completions.with_raw_response.create(
        model="claude", messages=HELLO, max_tokens=4, stream=True, stream_options={"include_usage": True}
    )
    request_id = raw.headers["x-request-id"]
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w0 w1 w2 w3"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 4)
    assert row["stream"] in (1, True) and row["status"] == "success"


def test_tool_call_round_trip(stack, fake):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    _, first = chat(stack, model="claude", messages=messages, tools=TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris", "unit": "celsius"}

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    request_id, second = chat(stack, model="claude", messages=messages, tools=TOOLS, max_tokens=3)
    assert second.choices[0].message.content == "w0 w1 w2" and second.choices[0].finish_reason == "length"
    sent = fake.stats()["last_request"]["messages"]
    assert sent[-1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 degrees and sunny"}],
    }
    # prompt: the question's 6 words, "Let me check." 3, the tool result 4, and 3 messages
    assert stack.usage_rows([request_id])[request_id]["prompt_tokens"] == 6 + 3 + 4 + 3


def test_streamed_tool_call(stack):
    chunks = list(
        stack.client().chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "weather in Rome?"}], tools=TOOLS, stream=True
        )
    )
    calls = [tc for c in chunks if c.choices and c.choices[0].delta.tool_calls for tc in c.choices[0].delta.tool_calls]
    assert calls[0].id and calls[0].function.name == "get_weather"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"location": "Paris", "unit": "celsius"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_prompt_cache_reads_and_writes_reach_the_usage_row(stack):
    messages = [
        {
            "role": "system",
            "content": [{"type": "text", "text": "a long shared preamble", "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "user", "content": "cached:2 hello"},
    ]
    request_id, completion = chat(stack, model="claude", messages=messages, max_tokens=2)
    assert completion.usage.prompt_tokens == 7 and completion.usage.prompt_tokens_details.cached_tokens == 2
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["cached_tokens"], row["cache_write_tokens"], row["completion_tokens"]) == (7, 2, 4, 2)


def test_upstream_errors(stack):
    with pytest.raises(openai.APIStatusError) as info:
        stack.client().chat.completions.create(model="claude-busy", messages=HELLO)
    assert info.value.status_code == 503
    assert ANTHROPIC_KEY not in str(info.value.body)
    with pytest.raises(openai.BadRequestError) as info:
        stack.client().chat.completions.create(model="claude-bad", messages=HELLO)
    assert "fake bad request" in str(info.value.body)
    request_id = info.value.response.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert row["status"] == "upstream_error" and row["http_status"] == 400 and row["provider"] == "anthropic"
