"""The official `anthropic` SDK against llmgw, both ways:
- `/v1/messages` (the Anthropic-compatible API) reaching an OpenAI-family model;
- `/anthropic/...` native passthrough (ANTHROPIC_BASE_URL=http://host/anthropic) to Anthropic,
  with a virtual key as the SDK's API key and the real key swapped in by the worker;
streaming both ways, and the usage row of each request."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.e2e.stack import MASTER_KEY, Stack, write_config
from tests.procs import FakeUpstream
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ANTHROPIC_KEY = "sk-ant-upstream-secret-424242"
HELLO = [{"role": "user", "content": "hello there friend"}]


@pytest.fixture(scope="module")
def fake_anthropic(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("anthropic"), ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, fake_anthropic, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stack")
    config = write_config(root / "base.yaml", upstream.base_url).read_text()
    model_list, _, rest = config.partition("general_settings:")
    config = (
        model_list
        + "  - model_name: claude-3-5-sonnet\n    params:\n      model: anthropic/claude-3-5-sonnet-20241022\n"
        + f"      api_base: {fake_anthropic.root_url}\n      api_key: {ANTHROPIC_KEY}\n"
        + "general_settings:"
        + rest
    )
    s = Stack(root, nats_server.url, "e2eanthropic", upstream, {}, config=config).start()
    yield s
    s.stop()


def new_key(stack: Stack, **params) -> str:
    response = httpx.post(
        f"{stack.base_url}/key/generate", headers={"authorization": f"Bearer {MASTER_KEY}"}, json=params, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["key"]


def client(stack: Stack, key: str, native: bool) -> anthropic.Anthropic:
    base = f"{stack.base_url}/anthropic" if native else stack.base_url
    return anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)


# ---- /v1/messages to an OpenAI-family model --------------------------------------------------


def test_messages_api_reaches_an_openai_model(stack: Stack) -> None:
    key = new_key(stack, models=["gpt-4"])
    raw = client(stack, key, native=False).messages.with_raw_response.create(
        model="gpt-4", max_tokens=5, system="be brief", messages=HELLO
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.model == "gpt-4"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (message.usage.input_tokens, message.usage.output_tokens)
    assert row["provider"] == "openai" and row["status"] == "success"


def test_messages_api_streams_from_an_openai_model(stack: Stack) -> None:
    key = new_key(stack, models=["gpt-4"])
    with client(stack, key, native=False).messages.stream(model="gpt-4", max_tokens=6, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_messages_api_errors_are_anthropic_errors(stack: Stack) -> None:
    key = new_key(stack, models=["gpt-4"])
    with pytest.raises(anthropic.PermissionDeniedError):
        client(stack, key, native=False).messages.create(model="gpt-3.5-turbo", max_tokens=5, messages=HELLO)
    with pytest.raises(anthropic.AuthenticationError):
        client(stack, "sk-not-a-key", native=False).messages.create(model="gpt-4", max_tokens=5, messages=HELLO)
    with pytest.raises(anthropic.BadRequestError) as err:
        client(stack, key, native=False).messages.create(model="gpt-4", max_tokens=5, messages=[])
    assert err.value.body["type"] == "error"


# ---- /anthropic native passthrough ------------------------------------------------------------


def test_native_passthrough_with_a_virtual_key(stack: Stack) -> None:
    key = new_key(stack, models=["claude-3-5-sonnet"])
    raw = client(stack, key, native=True).messages.with_raw_response.create(
        model="claude-3-5-sonnet", max_tokens=8, messages=HELLO
    )
    message = raw.parse()
    assert message.content[0].text and message.usage.output_tokens > 0
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert row["provider"] == "anthropic" and row["operation"] == "native" and row["status"] == "success"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (message.usage.input_tokens, message.usage.output_tokens)
    assert row["upstream_model"] == "claude-3-5-sonnet-20241022" and row["cost_known"] and row["cost"] > 0


def test_native_passthrough_streams(stack: Stack) -> None:
    key = new_key(stack)
    with client(stack, key, native=True).messages.stream(model="claude-3-5-sonnet", max_tokens=8, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert text and final.usage.output_tokens > 0
    row = stack.usage_rows([request_id])[request_id]
    assert row["stream"] and row["completion_tokens"] == final.usage.output_tokens
    assert row["prompt_tokens"] == final.usage.input_tokens


def test_native_passthrough_refuses_what_the_key_may_not_use_and_bad_paths(stack: Stack) -> None:
    key = new_key(stack, models=["gpt-4"])
    with pytest.raises(anthropic.PermissionDeniedError):
        client(stack, key, native=True).messages.create(model="claude-3-5-sonnet", max_tokens=5, messages=HELLO)
    with pytest.raises(anthropic.AuthenticationError):
        client(stack, "sk-wrong", native=True).messages.create(model="claude-3-5-sonnet", max_tokens=5, messages=HELLO)
    for path in ("/anthropic/v1/../../admin", "/anthropic/v1/%2e%2e/x", "/anthropic//v1/messages", "/anthropic/v1/messages%00"):
        response = httpx.post(
            f"{stack.base_url}{path}", headers={"x-api-key": MASTER_KEY}, json={"model": "claude-3-5-sonnet"}, timeout=10
        )
        assert response.status_code in (400, 404), (path, response.status_code)
        assert ANTHROPIC_KEY not in response.text


def test_native_passthrough_never_shows_the_provider_key(stack: Stack, fake_anthropic: FakeUpstream) -> None:
    key = new_key(stack)
    response = httpx.post(
        f"{stack.base_url}/anthropic/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", "cookie": "session=1", "x-forwarded-for": "10.0.0.1"},
        json={"model": "claude-3-5-sonnet", "max_tokens": 5, "messages": HELLO},
        timeout=10,
    )
    assert response.status_code == 200
    assert ANTHROPIC_KEY not in response.text and ANTHROPIC_KEY not in str(response.headers)
    assert ANTHROPIC_KEY not in stack.logs()


# ---- /v1/messages to an Anthropic deployment: forwarded as it came --------------------------------

SYSTEM_BETWEEN = [
    {"role": "user", "content": "hello there friend"},
    {"role": "system", "content": [{"type": "text", "text": "the environment is a test"}]},
]


def test_messages_to_an_anthropic_deployment_go_as_they_came(stack: Stack, fake_anthropic: FakeUpstream) -> None:
    key = new_key(stack, models=["claude-3-5-sonnet"])
    raw = client(stack, key, native=False).messages.with_raw_response.create(
        model="claude-3-5-sonnet",
        max_tokens=8,
        messages=SYSTEM_BETWEEN,
        extra_body={"context_management": {"edits": []}, "output_config": {"effort": "low"}},
        extra_headers={"anthropic-beta": "context-management-2025-06-27, oauth-2025-04-20,files-api-2025-04-14"},
    )
    message = raw.parse()
    assert message.content[0].text == "w0 w1 w2 w3 w4 w5 w6 w7"
    stats = fake_anthropic.stats()
    sent = stats["last_request"]
    assert sent["model"] == "claude-3-5-sonnet-20241022" and sent["messages"] == SYSTEM_BETWEEN
    assert sent["context_management"] == {"edits": []} and sent["output_config"] == {"effort": "low"}
    # Betas that reach into the gateway's shared account (or its OAuth) are not forwarded.
    assert stats["last_headers"]["anthropic-beta"] == "context-management-2025-06-27"
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["provider"], row["status"], row["model_group"]) == ("anthropic", "success", "claude-3-5-sonnet")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (message.usage.input_tokens, message.usage.output_tokens)
    assert row["cost"] > 0 and ANTHROPIC_KEY not in raw.http_response.text


def test_messages_to_an_anthropic_deployment_stream_as_they_came(stack: Stack) -> None:
    key = new_key(stack)
    with client(stack, key, native=False).messages.stream(
        model="claude-3-5-sonnet", max_tokens=8, messages=SYSTEM_BETWEEN
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert text == "w0 w1 w2 w3 w4 w5 w6 w7" and final.usage.output_tokens == 8
    row = stack.usage_rows([request_id])[request_id]
    assert row["stream"] and (row["prompt_tokens"], row["completion_tokens"]) == (final.usage.input_tokens, 8)


def test_a_system_message_inside_messages_reaches_an_openai_model_at_its_place(stack: Stack, upstream: FakeUpstream) -> None:
    key = new_key(stack, models=["gpt-4"])
    message = client(stack, key, native=False).messages.create(
        model="gpt-4", max_tokens=5, messages=[*SYSTEM_BETWEEN, {"role": "user", "content": "go on"}]
    )
    assert message.content[0].text
    sent = upstream.stats()["last_request"]["messages"]
    assert [m["role"] for m in sent] == ["user", "system", "user"]
    assert sent[1]["content"] == "the environment is a test"


def test_what_only_anthropic_takes_is_refused_for_other_models_in_anthropics_words(stack: Stack) -> None:
    key = new_key(stack, models=["gpt-4"])
    with pytest.raises(anthropic.BadRequestError) as err:
        client(stack, key, native=False).messages.create(
            model="gpt-4",
            max_tokens=5,
            messages=HELLO,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    body = err.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("tools.0.type: server tool `web_search_20250305` cannot be used with `gpt-4`")
    bare = httpx.post(
        f"{stack.base_url}/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={"model": "gpt-4", "messages": HELLO},
        timeout=10,
    )
    assert bare.status_code == 400
    assert bare.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}


# ---- count_tokens ---------------------------------------------------------------------------------

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL_ROUND = [
    {"role": "user", "content": "what is the weather"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny and warm"}]},
]


def test_count_tokens_on_an_anthropic_deployment_is_anthropics_count(stack: Stack, fake_anthropic: FakeUpstream) -> None:
    key = new_key(stack, key_alias="count-anthropic")
    before = fake_anthropic.stats()["counted"]
    raw = client(stack, key, native=False).messages.with_raw_response.count_tokens(
        model="claude-3-5-sonnet", system="be brief", messages=TOOL_ROUND, tools=[WEATHER_TOOL]
    )
    count = raw.parse()
    # The fake counts the words of the system prompt and of every text and tool result, plus one a message.
    texts = ("be brief", "what is the weather", "sunny and warm")
    assert count.input_tokens == sum(len(text.split()) for text in texts) + 3
    assert fake_anthropic.stats()["counted"] == before + 1
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["operation"], row["provider"], row["status"], row["cost"]) == ("count_tokens", "anthropic", "success", 0)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (0, 0)
    # The native passthrough serves Anthropic's count too.
    native = client(stack, key, native=True).messages.count_tokens(model="claude-3-5-sonnet", messages=HELLO)
    assert native.input_tokens == 3 + 1


def test_count_tokens_on_an_openai_model_is_the_tokenizers_count(stack: Stack, upstream: FakeUpstream) -> None:
    from llmgw.tokens import count_many

    key = new_key(stack, key_alias="count-openai")
    before = upstream.stats()["requests"]
    raw = client(stack, key, native=False).messages.with_raw_response.count_tokens(
        model="gpt-4", system="be brief", messages=TOOL_ROUND, tools=[WEATHER_TOOL]
    )
    texts = [
        "be brief",
        "what is the weather",
        "get_weather",
        '{"city":"Paris"}',
        "sunny and warm",
        "get_weather",
        "Get the weather",
        '{"type":"object","properties":{"city":{"type":"string"}}}',
    ]
    assert raw.parse().input_tokens == sum(count_many(texts, "gpt-4o")) > 0  # the gpt-4 group is gpt-4o upstream
    assert upstream.stats()["requests"] == before  # nothing went upstream
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["operation"], row["provider"], row["status"], row["cost"]) == ("count_tokens", "openai", "success", 0)
    assert row["usage_source"] == "estimated"
    # Also without /v1, as some clients send it.
    plain = httpx.post(
        f"{stack.base_url}/messages/count_tokens",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={"model": "gpt-4", "messages": HELLO},
        timeout=10,
    )
    assert plain.status_code == 200 and plain.json() == {"input_tokens": count_many(["hello there friend"], "gpt-4o")[0]}


def test_count_tokens_refusals_are_anthropic_errors_with_a_refused_row(stack: Stack) -> None:
    key = new_key(stack, key_alias="count-refused", models=["gpt-4"])
    sdk = client(stack, key, native=False)
    with pytest.raises(anthropic.BadRequestError) as err:
        sdk.messages.count_tokens(model="gpt-4", messages=[])
    assert err.value.body["type"] == "error" and err.value.body["error"]["message"].startswith("messages: ")
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk.messages.count_tokens(model="claude-3-5-sonnet", messages=HELLO)
    with pytest.raises(anthropic.AuthenticationError):
        client(stack, "sk-not-a-key", native=False).messages.count_tokens(model="gpt-4", messages=HELLO)
    rows = eventually_sync(
        lambda: (r := stack.query("SELECT * FROM usage FINAL WHERE key_alias = 'count-refused'")) and len(r) >= 2 and r,
        "the refused rows",
    )
    assert sorted((r["operation"], r["status"], r["http_status"], r["cost"]) for r in rows) == [
        ("count_tokens", "refused", 400, 0),
        ("count_tokens", "refused", 403, 0),
    ]
