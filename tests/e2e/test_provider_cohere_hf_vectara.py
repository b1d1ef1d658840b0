"""Cohere, the HuggingFace Inference API and Vectara behind the whole gateway (edge, worker and
metering as processes), driven by the official `openai` SDK against the three fake upstreams."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream
from workers.usage import Usage

pytestmark = pytest.mark.e2e

COHERE_KEY = "co-e2e-secret-key-123"
HF_KEY = "hf_e2e_secret_key_456"
VECTARA_KEY = "zqt_e2e_secret_key_789"
HELLO = [{"role": "user", "content": "Hello there friend"}]  # 3 words
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]
# What the usage rows say for usage the adapters estimated: 'estimated' once `Usage` can carry
# that mark (the handler records every adapter-given Usage as 'provider' until then).
ESTIMATED_SOURCE = "estimated" if "estimated" in Usage.__struct_fields__ else "provider"


def _fake(tmp_path_factory, key: str, module: str):
    return FakeUpstream(tmp_path_factory.mktemp(module.rsplit("_", 1)[-1]), key, module=module).start()


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    started = {
        "cohere": _fake(tmp_path_factory, COHERE_KEY, "bench.fake_cohere"),
        "hf": _fake(tmp_path_factory, HF_KEY, "bench.fake_huggingface"),
        "vectara": _fake(tmp_path_factory, VECTARA_KEY, "bench.fake_vectara"),
    }
    yield started
    for fake in started.values():
        fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, fakes, tmp_path_factory):
    config = f"""model_list:
  - model_name: command
    params:
      model: cohere/command-r
      api_base: {fakes["cohere"].root_url}
      api_key: os.environ/E2E_UPSTREAM_KEY
  - model_name: hf-gpt
    params:
      model: huggingface_inference/gpt2
      api_base: {fakes["hf"].root_url}
      api_key: os.environ/E2E_HF_KEY
  - model_name: handbook
    params:
      model: vectara/handbook-model
      api_base: {fakes["vectara"].root_url}
      api_key: os.environ/E2E_VECTARA_KEY
      vectara_corpus_key: employee-handbook
general_settings:
  master_key: os.environ/E2E_MASTER_KEY
"""
    extra_env = {"E2E_HF_KEY": HF_KEY, "E2E_VECTARA_KEY": VECTARA_KEY}
    s = Stack(
        tmp_path_factory.mktemp("stack"), nats_server.url, "e2eprovcohfvec", fakes["cohere"], extra_env, config=config
    ).start()
    yield s
    s.stop()


def chat(stack, **kwargs):
    raw = stack.client().chat.completions.with_raw_response.create(**kwargs)
    return raw.headers["x-request-id"], raw.parse()


def stream(stack, **kwargs):
    raw = stack.client().chat.completions.with_raw_response.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    return raw.headers["x-request-id"], list(raw.parse())


def text_of(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def assert_row(stack, request_id: str, provider: str, prompt: int, completion: int, source: str, **fields) -> dict:
    row = stack.usage_rows([request_id])[request_id]
    assert (row["provider"], row["prompt_tokens"], row["completion_tokens"]) == (provider, prompt, completion)
    assert row["usage_source"] == source and row["status"] == "success" and row["http_status"] == 200
    for name, value in fields.items():
        assert row[name] == value, name
    return row


# ---- Cohere -------------------------------------------------------------------------------------


def test_cohere_chat_and_stream_with_exact_usage(stack):
    request_id, completion = chat(stack, model="command", messages=HELLO, max_tokens=4)
    assert completion.choices[0].message.content == "w0 w1 w2 w3" and completion.choices[0].finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 4)  # 3 words + 1 message
    assert_row(stack, request_id, "cohere", 4, 4, "provider", upstream_model="command-r", model_group="command")

    request_id, chunks = stream(stack, model="command", messages=HELLO, max_tokens=3)
    assert text_of(chunks) == "w0 w1 w2"
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4, 3)
    row = assert_row(stack, request_id, "cohere", 4, 3, "provider")
    assert row["stream"] in (1, True)


def test_cohere_tool_call_round_trip(stack):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    request_id, completion = chat(stack, model="command", messages=messages, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "Paris"}
    assert_row(stack, request_id, "cohere", 7, 6, "provider")

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny and 21C"},
    ]
    _, answer = chat(stack, model="command", messages=messages, tools=TOOLS)
    assert answer.choices[0].message.content == "tool said: sunny and 21C"

    _, chunks = stream(stack, model="command", messages=messages[:1], tools=TOOLS)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather" and calls[0].id.startswith("get_weather")
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"location": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_cohere_embeddings_and_an_upstream_400(stack):
    raw = stack.client().embeddings.with_raw_response.create(model="command", input=["one two three", "four"])
    request_id, result = raw.headers["x-request-id"], raw.parse()
    assert [len(d.embedding) for d in result.data] == [8, 8] and result.usage.prompt_tokens == 4
    assert_row(stack, request_id, "cohere", 4, 0, "provider", operation="embeddings")

    with pytest.raises(openai.BadRequestError) as err:
        stack.client().embeddings.create(model="command", input=["x"], extra_body={"input_type": "bogus"})
    assert err.value.status_code == 400 and "valid input_type must be provided" in err.value.message
    assert COHERE_KEY not in str(err.value.body)


# ---- HuggingFace Inference API ------------------------------------------------------------------


def test_huggingface_chat_and_stream_with_counted_usage(stack):
    # the prompt "User: Hello there friend\nAssistant:" is 5 words: the fake's prefill / input_length
    request_id, completion = chat(stack, model="hf-gpt", messages=HELLO, max_tokens=3)
    assert completion.choices[0].message.content == "w0 w1 w2" and completion.choices[0].finish_reason == "length"
    assert_row(stack, request_id, "huggingface_inference", 5, 3, "provider", upstream_model="gpt2")

    request_id, chunks = stream(stack, model="hf-gpt", messages=HELLO)
    assert text_of(chunks) == "w0 w1 w2 w3 w4 w5 w6 w7"  # the end-of-sequence token is not shown...
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 9)  # ...but counted
    assert_row(stack, request_id, "huggingface_inference", 5, 9, "provider")


def test_huggingface_embeddings_are_metered_as_estimated(stack):
    raw = stack.client().embeddings.with_raw_response.create(model="hf-gpt", input=["one two three", "four"])
    request_id, result = raw.headers["x-request-id"], raw.parse()
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert result.usage.prompt_tokens == 5  # 13 and 4 characters at 4 a token
    assert_row(stack, request_id, "huggingface_inference", 5, 0, ESTIMATED_SOURCE, operation="embeddings")


def test_huggingface_refuses_tools(stack):
    with pytest.raises(openai.BadRequestError) as err:
        stack.client().chat.completions.create(model="hf-gpt", messages=HELLO, tools=TOOLS)
    assert "no tool calling" in err.value.message


# ---- Vectara ------------------------------------------------------------------------------------


def test_vectara_answers_the_last_question_with_estimated_usage(stack):
    messages = [
        {"role": "user", "content": "Where is the office?"},
        {"role": "assistant", "content": "Which one?"},
        {"role": "user", "content": "Paris, 2024"},
    ]  # the query: 11 characters, 3 tokens
    request_id, completion = chat(stack, model="handbook", messages=messages, max_tokens=4)
    assert completion.choices[0].message.content == "w0 w1 w2 w3" and completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 3)  # "w0 w1 w2 w3": 11 characters
    assert_row(stack, request_id, "vectara", 3, 3, ESTIMATED_SOURCE, upstream_model="handbook-model")

    request_id, chunks = stream(stack, model="handbook", messages=messages)
    assert text_of(chunks) == "w0 w1 w2 w3 w4 w5 w6 w7"
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 6)  # 23 characters
    assert_row(stack, request_id, "vectara", 3, 6, ESTIMATED_SOURCE)


def test_vectara_is_asked_in_the_configured_corpus_with_the_gateway_key(stack, fakes):
    chat(stack, model="handbook", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Holidays?"}])
    vectara = fakes["vectara"].stats()
    assert vectara["by_model"].get("employee-handbook", 0) >= 1 and vectara["auth_failures"] == 0
    assert vectara["last_request"]["query"] == "Holidays?"  # system prompts and earlier turns are not sent
    assert fakes["cohere"].stats()["auth_failures"] == 0 and fakes["hf"].stats()["auth_failures"] == 0


def test_cohere_native_route_with_a_virtual_key(stack, fakes):
    """Cohere's own v2 API at /cohere with a gateway key as the bearer: relayed as Cohere sent it,
    metered from its own usage fields, whole and streamed."""
    key = httpx.post(
        f"{stack.base_url}/key/generate", headers={"authorization": f"Bearer {MASTER_KEY}"}, json={}, timeout=10
    ).json()["key"]
    body = {"model": "command", "messages": [{"role": "user", "content": "hello there friend"}], "max_tokens": 4}
    response = httpx.post(f"{stack.base_url}/cohere/v2/chat", headers={"authorization": f"Bearer {key}"}, json=body, timeout=20)
    assert response.status_code == 200, response.text
    answer = response.json()
    tokens = answer["usage"]["tokens"]
    assert answer["message"]["content"][0]["text"] and fakes["cohere"].api_key not in response.text
    request_id = response.headers["x-request-id"]
    assert_row(stack, request_id, "cohere", tokens["input_tokens"], tokens["output_tokens"], "provider", operation="native")
    streamed = httpx.post(
        f"{stack.base_url}/cohere/v2/chat", headers={"authorization": f"Bearer {key}"}, json={**body, "stream": True}, timeout=20
    )
    assert streamed.status_code == 200 and "message-end" in streamed.text
    row = stack.usage_rows([streamed.headers["x-request-id"]])[streamed.headers["x-request-id"]]
    assert row["stream"] and row["completion_tokens"] > 0 and row["operation"] == "native"
