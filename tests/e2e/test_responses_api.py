"""The Responses API (`POST /v1/responses`) with the official `openai` SDK, on an OpenAI deployment
(forwarded natively to the fake's /v1/responses) and on an Anthropic one (translated to chat and
back, against bench/fake_anthropic.py): whole, streamed, a function-tool round trip and a
conversation continued with `previous_response_id`; stored responses (retrieve, input items,
delete, read by their owners only); bad input refused with one `refused` row; every answer's
usage row exact (the fakes' counts, priced as the config says)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.e2e.responses_stack import ANTHROPIC_KEY, cost_of, new_key, start_stack
from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY, Stack
from tests.procs import FakeUpstream

pytestmark = pytest.mark.e2e

NATIVE, TRANSLATED = "gpt-4o", "claude"
BOTH = pytest.mark.parametrize("model", [NATIVE, TRANSLATED])
EXEC_TOOL = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather at a place",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


@pytest.fixture(scope="module")
def fake_anthropic(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("anthropic"), ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, fake_anthropic, tmp_path_factory: pytest.TempPathFactory):
    s = start_stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2eresponses", upstream, fake_anthropic)
    yield s
    s.stop()


def client(stack: Stack, key: str = MASTER_KEY, base: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}{base}", api_key=key, max_retries=0)


def assert_metered(stack: Stack, request_id: str, usage, operation: str, provider: str) -> dict:
    """The request's one usage row holds the tokens its answer reported, at the config's prices."""
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage.input_tokens, usage.output_tokens)
    assert row["cached_tokens"] == usage.input_tokens_details.cached_tokens
    assert (row["status"], row["operation"], row["provider"]) == ("success", operation, provider)
    assert row["cost"] == pytest.approx(cost_of(usage.input_tokens, usage.output_tokens), abs=1e-9)
    return row


OPERATION = {NATIVE: ("responses", "openai"), TRANSLATED: ("chat", "anthropic")}


# ---- whole and streamed --------------------------------------------------------------------------


@BOTH
def test_a_whole_response(stack: Stack, model: str) -> None:
    raw = client(stack).responses.with_raw_response.create(
        model=model, input="hello there friend cached:2", instructions="be brief"
    )
    response = raw.parse()
    assert response.object == "response" and response.id.startswith("resp_") and response.status == "completed"
    assert response.output[0].type == "message" and response.output_text.startswith("w0 w1")
    # the fakes' accounting: words and items (+ instructions) in; eight words out
    assert (response.usage.input_tokens, response.usage.output_tokens) == ((8, 8) if model == NATIVE else (7, 8))
    assert response.usage.input_tokens_details.cached_tokens == 2
    assert_metered(stack, raw.headers["x-request-id"], response.usage, *OPERATION[model])


@BOTH
def test_a_streamed_response(stack: Stack, model: str) -> None:
    with client(stack).responses.with_streaming_response.create(model=model, input="hello there friend", stream=True) as raw:
        request_id = raw.headers["x-request-id"]
        events = list(raw.parse())
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds, kinds
    assert kinds[-1] == "response.completed"
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers) and numbers[0] == 0
    completed = events[-1].response
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == completed.output_text == "w0 w1 w2 w3 w4 w5 w6 w7"
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    assert_metered(stack, request_id, completed.usage, *OPERATION[model])


def test_the_sdk_stream_helper_accumulates_a_translated_stream(stack: Stack) -> None:
    with client(stack).responses.stream(model=TRANSLATED, input="what is the weather in Paris", tools=[WEATHER_TOOL]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["message", "function_call"]
    call = final.output[1]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"location": "Paris", "unit": "celsius"}


# ---- tools and conversations ---------------------------------------------------------------------


def test_a_function_tool_round_trip_on_a_native_deployment(stack: Stack, upstream: FakeUpstream) -> None:
    sdk = client(stack)
    first = sdk.responses.with_raw_response.create(model="agent", input="run the command", tools=[EXEC_TOOL])
    call = first.parse().output[0]
    assert call.type == "function_call" and call.name == "exec_command"
    assert json.loads(call.arguments) == {"cmd": "echo hello-from-tool"}
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "hello-from-tool"}
    second = sdk.responses.with_raw_response.create(
        model="agent", previous_response_id=first.parse().id, input=[output], tools=[EXEC_TOOL]
    )
    assert second.parse().output_text == "The tool printed: hello-from-tool"
    sent = upstream.stats()["last_responses"]  # the conversation went upstream whole, not stored there
    assert sent["store"] is False and "previous_response_id" not in sent
    assert [item.get("type", "message") for item in sent["input"]] == ["message", "function_call", "function_call_output"]
    for raw in (first, second):
        assert_metered(stack, raw.headers["x-request-id"], raw.parse().usage, "responses", "openai")


def test_a_function_tool_round_trip_on_an_anthropic_deployment(stack: Stack, fake_anthropic: FakeUpstream) -> None:
    sdk = client(stack)
    first = sdk.responses.with_raw_response.create(model=TRANSLATED, input="what is the weather in Paris", tools=[WEATHER_TOOL])
    items = first.parse().output
    assert [item.type for item in items] == ["message", "function_call"]
    assert first.parse().output_text == "Let me check."
    call = items[1]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 degrees"}
    second = sdk.responses.with_raw_response.create(
        model=TRANSLATED, previous_response_id=first.parse().id, input=[output], tools=[WEATHER_TOOL]
    )
    assert second.parse().output_text == "w0 w1 w2 w3 w4 w5 w6 w7"
    sent = fake_anthropic.stats()["last_request"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][1]["type"] == "tool_use" and sent[2]["content"][0]["tool_use_id"] == sent[1]["content"][1]["id"]
    for raw in (first, second):
        assert_metered(stack, raw.headers["x-request-id"], raw.parse().usage, "chat", "anthropic")


@BOTH
def test_previous_response_id_continues_a_conversation(stack: Stack, model: str) -> None:
    sdk = client(stack)
    first = sdk.responses.create(model=model, input="my name is ana")
    raw = sdk.responses.with_raw_response.create(model=model, previous_response_id=first.id, input="what is my name")
    second = raw.parse()
    assert second.previous_response_id == first.id
    # the second prompt held the first exchange: 4 + 8 + 4 words, 3 items or messages
    assert second.usage.input_tokens == 4 + 8 + 4 + 3
    assert_metered(stack, raw.headers["x-request-id"], second.usage, *OPERATION[model])


def test_a_conversation_moves_between_providers(stack: Stack) -> None:
    sdk = client(stack)
    first = sdk.responses.create(model=NATIVE, input="my name is ana")
    second = sdk.responses.create(model=TRANSLATED, previous_response_id=first.id, input="what is my name")
    third = sdk.responses.create(model=NATIVE, previous_response_id=second.id, input="and again")
    assert second.usage.input_tokens == 4 + 8 + 4 + 3
    assert third.usage.input_tokens == 4 + 8 + 4 + 8 + 2 + 5


# ---- stored responses ---------------------------------------------------------------------------


@BOTH
def test_stored_responses_are_retrieved_listed_and_deleted(stack: Stack, model: str) -> None:
    key = new_key(stack, user_id="responses-owner")
    sdk = client(stack, key)
    first = sdk.responses.create(model=model, input=[{"role": "user", "content": "one two"}], instructions="be brief")
    second = sdk.responses.create(
        model=model, previous_response_id=first.id, input=[{"role": "user", "content": [{"type": "input_text", "text": "three"}]}]
    )
    fetched = sdk.responses.retrieve(second.id)
    assert (fetched.id, fetched.output_text, fetched.previous_response_id) == (second.id, second.output_text, first.id)
    assert fetched.usage.input_tokens == second.usage.input_tokens
    newest_first = sdk.responses.input_items.list(second.id)
    texts = [item.content[0].text for item in newest_first.data]
    assert texts == ["three", first.output_text, "one two"]
    assert newest_first.first_id == newest_first.data[0].id and newest_first.last_id == newest_first.data[-1].id
    assert newest_first.has_more is False
    page = sdk.responses.input_items.list(second.id, order="asc", limit=2)
    assert [item.content[0].text for item in page.data] == ["one two", first.output_text] and page.has_more
    rest = sdk.responses.input_items.list(second.id, order="asc", limit=2, after=page.last_id)
    assert [item.content[0].text for item in rest.data] == ["three"] and not rest.has_more
    assert sdk.responses.input_items.list(first.id).data[0].content[0].text == "one two"
    same_user = client(stack, new_key(stack, user_id="responses-owner"))
    assert same_user.responses.retrieve(second.id).id == second.id
    deleted = httpx.delete(f"{stack.base_url}/v1/responses/{second.id}", headers={"authorization": f"Bearer {key}"}, timeout=10)
    assert deleted.status_code == 200 and deleted.json() == {"id": second.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(second.id)
    sdk.responses.delete(first.id)  # (the SDK's own call)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.input_items.list(first.id)


def test_a_record_larger_than_a_bus_message_is_stored_and_continued(stack: Stack) -> None:
    key = new_key(stack, user_id="large-owner")
    sdk = client(stack, key)
    big = "word " * 300_000  # 1.5 MB of input: more than one NATS message (1 MiB) holds
    first = sdk.responses.create(model=NATIVE, input=[{"role": "user", "content": big}])
    fetched = sdk.responses.retrieve(first.id)
    assert (fetched.id, fetched.output_text) == (first.id, first.output_text)
    items = sdk.responses.input_items.list(first.id).data
    assert len(items) == 1 and items[0].content[0].text == big
    second = sdk.responses.create(model=NATIVE, previous_response_id=first.id, input="and then?")
    assert second.usage.input_tokens > first.usage.input_tokens  # the whole conversation went upstream
    stranger = client(stack, new_key(stack, user_id="large-stranger"))
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(first.id)
    sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(first.id)


def test_another_key_cannot_read_a_stored_response(stack: Stack) -> None:
    owner = client(stack, new_key(stack, user_id="reader-a"))
    response = owner.responses.create(model=NATIVE, input="a secret plan")
    stranger = client(stack, new_key(stack, user_id="reader-b"))
    for attempt in (
        lambda: stranger.responses.retrieve(response.id),
        lambda: stranger.responses.input_items.list(response.id),
        lambda: stranger.responses.delete(response.id),
        lambda: stranger.responses.create(model=NATIVE, previous_response_id=response.id, input="go on"),
    ):
        with pytest.raises((openai.NotFoundError, openai.BadRequestError)):
            attempt()
    assert owner.responses.retrieve(response.id).id == response.id  # still there for its owner


def test_store_false_keeps_nothing(stack: Stack) -> None:
    sdk = client(stack)
    response = sdk.responses.create(model=TRANSLATED, input="forget me", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


# ---- bad input ----------------------------------------------------------------------------------


def refused_row(stack: Stack, request_id: str) -> dict:
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["cost"], row["operation"]) == ("refused", 0.0, "responses")
    return row


def test_an_unknown_previous_response_id_is_a_400_naming_it(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(stack).responses.create(model=NATIVE, previous_response_id="resp_does_not_exist", input="hi")
    error = err.value.body
    assert (error["code"], error["param"]) == ("previous_response_not_found", "previous_response_id")
    assert "resp_does_not_exist" in error["message"]
    row = refused_row(stack, err.value.response.headers["x-request-id"])
    assert (row["http_status"], row["error_code"]) == (400, "previous_response_not_found")


@pytest.mark.parametrize(
    ("body", "param", "named"),
    [
        ({"input": "search it", "tools": [{"type": "web_search"}]}, "tools[0].type", "web_search"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
            "input[0].content[0].type",
            "input_file",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "item_reference"),
    ],
)
def test_what_a_chat_model_cannot_take_is_a_400_metered_once(
    stack: Stack, fake_anthropic: FakeUpstream, body: dict, param: str, named: str
) -> None:
    before = fake_anthropic.stats()["requests"]
    response = httpx.post(
        f"{stack.base_url}/v1/responses",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"model": TRANSLATED, **body},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "unsupported_value", param)
    assert named in error["message"] and "claude" in error["message"]
    request_id = response.headers["x-request-id"]
    assert refused_row(stack, request_id)["http_status"] == 400
    rows = stack.query("SELECT count() AS n FROM usage WHERE request_id = {id:String}", {"id": request_id})
    assert rows == [{"n": 1}]
    assert fake_anthropic.stats()["requests"] == before  # nothing went upstream


def test_a_hosted_tool_goes_to_a_native_deployment(stack: Stack, upstream: FakeUpstream) -> None:
    """What chat cannot take is the Responses API's own business where it is spoken natively."""
    response = client(stack).responses.create(model=NATIVE, input="search it", tools=[{"type": "web_search"}])
    assert response.status == "completed"
    assert upstream.stats()["last_responses"]["tools"] == [{"type": "web_search"}]


def test_bad_bodies_are_openai_errors(stack: Stack) -> None:
    for body, param in (
        ({"model": NATIVE}, "input"),
        ({"model": NATIVE, "input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        ({"model": NATIVE, "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        ({"model": NATIVE, "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": NATIVE, "input": "hi", "background": True, "store": False}, "store"),  # (background is stored)
    ):
        response = httpx.post(
            f"{stack.base_url}/v1/responses", headers={"authorization": f"Bearer {MASTER_KEY}"}, json=body, timeout=10
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param, response.text
        assert "Traceback" not in response.text and UPSTREAM_KEY not in response.text


# ---- deployments: which speak the Responses API ---------------------------------------------------


def test_deployments_choose_native_or_translated(stack: Stack, upstream: FakeUpstream) -> None:
    sdk = client(stack)
    for model, native in (("compat", True), ("no-native", False), ("chat-only", False), ("azure-gpt", True)):
        before = upstream.stats()
        raw = sdk.responses.with_raw_response.create(model=model, input=f"which way for {model}")
        response = raw.parse()
        assert response.output_text == "w0 w1 w2 w3 w4 w5 w6 w7"
        after = upstream.stats()
        assert (after["last_responses"] != before["last_responses"]) is native, model
        row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
        assert row["operation"] == ("responses" if native else "chat"), model
        assert (row["prompt_tokens"], row["completion_tokens"]) == (response.usage.input_tokens, response.usage.output_tokens)


def test_the_openai_prefixed_paths_serve_it_too(stack: Stack) -> None:
    for base in ("/openai", "/openai/v1", ""):
        sdk = client(stack, base=base)
        response = sdk.responses.create(model=TRANSLATED, input="hello")
        assert response.output_text
        assert sdk.responses.retrieve(response.id).output_text == response.output_text
        assert sdk.responses.input_items.list(response.id).data[0].content[0].text == "hello"
        sdk.responses.delete(response.id)


def test_a_native_stream_cut_short_ends_with_an_error_event(stack: Stack) -> None:
    with client(stack).responses.with_streaming_response.create(model="stream-fail", input="hello", stream=True) as raw:
        request_id = raw.headers["x-request-id"]
        events = list(raw.parse())
    # (how much of the stream reached the worker before the connection broke depends on when it read)
    assert events[-1].type == "error" and events[-1].code == "upstream_error"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    row = stack.usage_rows([request_id])[request_id]
    assert row["status"] == "upstream_error" and row["usage_source"] == "estimated" and row["prompt_tokens"] > 0


# ---- native passthrough -------------------------------------------------------------------------


def test_native_passthrough_of_a_responses_call_is_metered(stack: Stack) -> None:
    """`/azure/openai/v1/responses`, the Azure SDK's path through the native route: metered from
    the Responses usage fields, whole and streamed."""
    key = new_key(stack)
    sdk = openai.OpenAI(base_url=f"{stack.base_url}/azure/openai/v1", api_key=key, max_retries=0)
    raw = sdk.responses.with_raw_response.create(model="gpt-4o", input="hello there native")
    response = raw.parse()
    row = stack.usage_rows([raw.headers["x-request-id"]])[raw.headers["x-request-id"]]
    assert (row["operation"], row["provider"]) == ("native", "azure")
    assert (
        (row["prompt_tokens"], row["completion_tokens"]) == (response.usage.input_tokens, response.usage.output_tokens) == (4, 8)
    )
    assert row["cost"] == pytest.approx(cost_of(4, 8), abs=1e-9)
    with sdk.responses.with_streaming_response.create(model="gpt-4o", input="hello there native", stream=True) as streamed:
        request_id = streamed.headers["x-request-id"]
        events = list(streamed.parse())
    assert events[-1].type == "response.completed"
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (4, 8, "provider")


# ---- budgets ------------------------------------------------------------------------------------


def test_the_worst_case_counts_the_stored_conversation(stack: Stack) -> None:
    """A continuation of a long conversation is as costly as the conversation: a budget that would
    hold its few new words does not admit it."""
    long_input = " ".join(["word"] * 8000)  # 40,000 bytes: at least 10,000 tokens, 0.02 USD
    first_cost = cost_of(8000 + 1, 16)  # the fake's count, at most 16 tokens out
    key = new_key(stack, max_budget=round(first_cost + 0.005, 6))
    sdk = client(stack, key)
    first = sdk.responses.create(model=NATIVE, input=long_input, max_output_tokens=16)
    with pytest.raises(openai.RateLimitError) as err:
        sdk.responses.create(model=NATIVE, previous_response_id=first.id, input="go on", max_output_tokens=16)
    assert err.value.body["code"] == "budget_exceeded"
    assert sdk.responses.create(model=NATIVE, input="go on", max_output_tokens=16).status in ("completed", "incomplete")
