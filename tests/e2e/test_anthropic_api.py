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
