"""The Responses API's other parts: which deployments speak it, stored conversations and their
listing, who may read a stored response, native answers relayed with the client's echo, and the
worker's side (the body it forwards, the usage it reads)."""

from __future__ import annotations

import json

import msgspec
import pytest

from gateway.responses.items import conversation_items, listed_conversation, listed_item
from gateway.responses.native import Echo, NativeEventStream, NativeResponsesStream, whole_native_answer
from gateway.responses.route import ResponsesCall, speaks_responses
from gateway.responses.store import owned_by
from llmgw.config import Deployment
from llmgw.contracts import Caller, Completed, StoredResponse, UpstreamRequest
from workers.providers.errors import UpstreamError
from workers.providers.openai_family import OpenAIUsageReader
from workers.providers.request_body import RequestBody
from workers.providers.responses_native import MIN_OUTPUT_TOKENS, output_cap, responses_body

pytestmark = pytest.mark.unit


def deployment(provider: str, **extra: object) -> Deployment:
    return Deployment(
        id="d/0",
        model_name="m",
        provider=provider,
        upstream_model="up-model",
        extra=tuple(extra.items()),
        input_cost_per_token=1e-6,
        output_cost_per_token=1e-5,
    )


@pytest.mark.parametrize(
    ("provider", "flag", "native"),
    [
        ("openai", None, True),
        ("azure", None, True),
        ("hosted_vllm", None, False),
        ("hosted_vllm", True, True),
        ("groq", "true", True),
        ("openai", False, False),
        ("openai", "false", False),
        ("anthropic", True, False),  # only the OpenAI family's adapters can forward it
        ("gemini", None, False),
    ],
)
def test_which_deployments_speak_the_responses_api(provider: str, flag: object, native: bool) -> None:
    d = deployment(provider, **({"responses_api": flag} if flag is not None else {}))
    assert speaks_responses(d) is native


# ---- stored conversations -----------------------------------------------------------------------


def record(rid: str, inputs: list[dict], output: list[dict], previous: list[str] | None = None) -> StoredResponse:
    return StoredResponse(id=rid, key_hash="k", previous=previous or [], input=inputs, response={"id": rid, "output": output})


def test_a_conversation_is_each_response_input_then_output_without_unreplayable_reasoning() -> None:
    first = record(
        "resp_a",
        [{"role": "user", "content": "hi"}],
        [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "reasoning", "id": "rs_2", "encrypted_content": "xyz"},
            {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
        ],
    )
    second = record("resp_b", [{"role": "user", "content": "again"}], [], ["resp_a"])
    items = conversation_items([first, second])
    assert [i.get("id", i.get("content")) for i in items] == ["hi", "rs_2", "msg_1", "again"]


def test_listed_items_have_stable_ids_types_and_parts() -> None:
    first = record(
        "resp_a", [{"role": "user", "content": "hi"}], [{"id": "msg_1", "type": "message", "role": "assistant", "content": []}]
    )
    second = record("resp_b", [{"type": "function_call_output", "call_id": "c", "output": "x"}], [], ["resp_a"])
    listed = listed_conversation([first, second])
    assert [i["id"] for i in listed] == ["msg_a0000", "msg_1", "fco_b0000"]
    assert listed[0] == {
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
        "type": "message",
        "id": "msg_a0000",
        "status": "completed",
    }
    assert listed == listed_conversation([first, second])  # the same every time: `after` pages by these
    assert listed_item({"role": "assistant", "content": "ok"}, "resp_c", 2)["content"] == [
        {"type": "output_text", "text": "ok", "annotations": []}
    ]


def test_a_stored_response_is_read_by_its_key_user_or_team_only() -> None:
    stored = StoredResponse(id="resp_x", key_hash="k1", user_id="u1", team_id="t1")
    assert owned_by(stored, Caller(key_hash="k1"))
    assert owned_by(stored, Caller(key_hash="k2", user_id="u1"))
    assert owned_by(stored, Caller(key_hash="k3", team_id="t1"))
    assert not owned_by(stored, Caller(key_hash="k4", user_id="u2", team_id="t2"))
    assert not owned_by(StoredResponse(id="resp_y", key_hash="k1"), Caller(key_hash="k5"))  # no user, no team: the key alone


def test_the_native_body_holds_the_conversation_and_stores_nothing_upstream() -> None:
    from gateway.responses.request import parse_responses_request

    raw = b'{"model": "m", "input": "next", "previous_response_id": "resp_a", "service_tier": "flex"}'
    request, fields = parse_responses_request(raw)
    state = ResponsesCall(request, fields, [{"role": "user", "content": "next"}], store=None)  # type: ignore[arg-type]
    state.history = [{"role": "user", "content": "first"}]
    body = json.loads(state.native_body())
    assert body == {
        "model": "m",
        "input": [{"role": "user", "content": "first"}, {"role": "user", "content": "next"}],
        "service_tier": "flex",
        "store": False,
    }


# ---- native answers relayed ---------------------------------------------------------------------

ECHO = Echo(store=True, previous_response_id="resp_prev")


def sse(event: dict) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + json.dumps(event).encode() + b"\n\n"


def test_a_native_stream_gets_the_echo_and_keeps_its_final_response_across_chunk_boundaries() -> None:
    response = {"id": "resp_1", "object": "response", "store": False, "previous_response_id": None, "output": []}
    stream = (
        sse({"type": "response.created", "response": response, "sequence_number": 0})
        + sse({"type": "response.output_text.delta", "delta": "hi", "sequence_number": 1})
        + sse({"type": "response.completed", "response": {**response, "output": [{"type": "message"}]}, "sequence_number": 2})
    )
    relay = NativeResponsesStream(ECHO)
    out = b"".join(relay.data([stream[i : i + 7]]) for i in range(0, len(stream), 7)) + relay.end()
    events = [json.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: ")]
    assert [e["type"] for e in events] == ["response.created", "response.output_text.delta", "response.completed"]
    assert events[0]["response"]["store"] is True and events[0]["response"]["previous_response_id"] == "resp_prev"
    assert relay.events.final is not None and relay.events.final["output"] == [{"type": "message"}]
    error = relay.error(502, "broke off", "api_error", "upstream_error")
    assert json.loads(error.split(b"data: ")[1])["sequence_number"] == 3


def test_a_partial_last_line_waits_for_the_rest() -> None:
    events = NativeEventStream(ECHO)
    assert events.feed(b'data: {"type":"response.output_text.delta","sequence_number":4}') == b""  # (no line end yet)
    assert events.last_sequence == -1
    assert events.rest().startswith(b"data: ") and events.last_sequence == 4


def test_a_whole_native_answer_gets_the_echo_and_an_error_passes_as_it_came() -> None:
    body = json.dumps({"id": "resp_1", "object": "response", "store": False, "output": []}).encode()
    status, headers, sent, response = whole_native_answer(
        Completed(request_id="r", body=body, headers=[("content-type", "application/json")]), ECHO
    )
    assert status == 200 and (b"content-type", b"application/json") in headers
    assert json.loads(sent)["store"] is True and response is not None and response["previous_response_id"] == "resp_prev"
    error = b'{"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}}'
    assert whole_native_answer(Completed(request_id="r", body=error, status=400), ECHO)[2:] == (error, None)


# ---- the worker's side --------------------------------------------------------------------------


def request(body: bytes, cost_cap: float | None = None) -> UpstreamRequest:
    return UpstreamRequest(
        request_id="r",
        reply_to="x",
        operation="responses",
        model_group="m",
        deployment_id="d/0",
        body=body,
        stream=False,
        include_usage=False,
        deadline=0.0,
        received_at=0.0,
        caller=Caller(key_hash="k"),
        cost_cap=cost_cap,
    )


def test_the_forwarded_body() -> None:
    raw = b'{"model": "m", "input": "hi", "timeout": 5, "api_key": "sk-client", "max_output_tokens": 500, "store": false}'
    sent = json.loads(responses_body(RequestBody(raw), "up-model", ["policy"], frozenset({"timeout", "api_key"}), 100))
    assert sent == {
        "model": "up-model",
        "input": [{"role": "system", "content": "policy"}, {"role": "user", "content": "hi"}],
        "max_output_tokens": 100,
        "store": False,
    }
    items = b'{"model": "m", "input": [{"role": "user", "content": "hi"}]}'
    sent = json.loads(responses_body(RequestBody(items), "up", [], frozenset(), None))
    assert sent == {"model": "up", "input": [{"role": "user", "content": "hi"}]}


def test_a_capped_request_gets_the_output_it_can_pay_for() -> None:
    d = deployment("openai")
    body = b'{"model": "m", "input": "hi"}'
    assert output_cap(request(body), d, "up-model") is None
    allowance = output_cap(request(body, cost_cap=1e-3), d, "up-model")
    assert allowance == int((1e-3 - len(body) * 1e-6) / 1e-5)
    # A budget that cannot pay for the smallest answer the API takes stops the request unsent.
    assert (
        output_cap(request(body, cost_cap=len(body) * 1e-6 + (MIN_OUTPUT_TOKENS + 0.5) * 1e-5), d, "up-model")
        == MIN_OUTPUT_TOKENS
    )
    with pytest.raises(UpstreamError) as stopped:
        output_cap(request(body, cost_cap=1e-9), d, "up-model")
    assert (stopped.value.status, stopped.value.code) == (429, "budget_exceeded")


RESPONSES_USAGE = {
    "input_tokens": 11,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 9,
    "output_tokens_details": {"reasoning_tokens": 3},
    "total_tokens": 20,
}


def test_the_openai_usage_reader_reads_responses_usage_whole_and_streamed() -> None:
    whole = OpenAIUsageReader()
    whole.body(msgspec.json.encode({"id": "resp_1", "object": "response", "usage": RESPONSES_USAGE}))
    streamed = OpenAIUsageReader()
    streamed.event(msgspec.json.encode({"type": "response.created", "response": {"id": "resp_1", "usage": None}}))
    assert streamed.usage is None
    streamed.event(msgspec.json.encode({"type": "response.completed", "response": {"id": "resp_1", "usage": RESPONSES_USAGE}}))
    for reader in (whole, streamed):
        usage = reader.usage
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens) == (11, 9, 4, 3)
    chat = OpenAIUsageReader()
    chat.body(b'{"usage": {"prompt_tokens": 2, "completion_tokens": 1}}')
    assert chat.usage is not None and (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (2, 1)


# ---- routing: fallbacks of the same kind ---------------------------------------------------------


def test_candidates_and_fallbacks_are_of_the_first_deployment_kind() -> None:
    from types import SimpleNamespace

    from gateway.access import ModelAccess
    from gateway.auth import Principal
    from gateway.responses.request import parse_responses_request
    from gateway.responses.route import RESPONSES
    from gateway.router import ModelRouter
    from gateway.routes import Call
    from llmgw.config import GatewayConfig
    from llmgw.routing import RouterSettings

    def dep(i: str, group: str, provider: str) -> Deployment:
        return Deployment(id=i, model_name=group, provider=provider, upstream_model="x")

    deployments = (
        dep("main/0", "main", "openai"),
        dep("main/1", "main", "openai"),
        dep("back/0", "back", "anthropic"),
        dep("back/1", "back", "azure"),
    )
    settings = RouterSettings(fallbacks={"main": ("back",)})
    edge = SimpleNamespace(
        access=ModelAccess(deployments),
        router=ModelRouter(deployments, settings),
        settings=SimpleNamespace(config=GatewayConfig(deployments=deployments)),
    )
    request, fields = parse_responses_request(b'{"model": "main", "input": "hi"}')
    call = Call("main", b"{}")
    call.state = ResponsesCall(request, fields, [{"role": "user", "content": "hi"}], store=None)  # type: ignore[arg-type]
    target = RESPONSES.target(edge, Principal(caller=Caller(key_hash="k")), call)  # type: ignore[arg-type]
    assert call.state.native and sorted(d.id for d in target.candidates) == ["main/0", "main/1"]
    assert target.fallbacks == ["back/1"]  # the Anthropic one cannot take a Responses body
