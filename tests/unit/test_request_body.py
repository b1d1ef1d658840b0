"""A request's body decoded once: the views adapters, the cost cap and the usage estimate share."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from llmgw.config import Deployment
from llmgw.contracts import Caller, Operation, UpstreamRequest
from workers.budget_cap import StreamMeter, apply_cost_cap
from workers.providers import request_body
from workers.providers.anthropic.request import chat_request_to_anthropic
from workers.providers.errors import UpstreamError
from workers.providers.openai_family import rewrite_body
from workers.providers.request_body import RequestBody, estimate_prompt_tokens, json_value

pytestmark = pytest.mark.unit

CHAT = {
    "model": "gpt-4",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "12345678"}]}],
    "max_tokens": 500,
    "temperature": 0.5,
    "logit_bias": {"50256": -100},  # a field the typed request does not declare
    "timeout": 30,
}


class CountingDecoder:
    """A decoder that counts the bodies it decodes."""

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self.calls = 0

    def decode(self, raw: bytes) -> Any:
        self.calls += 1
        return self.decoder.decode(raw)


@pytest.fixture
def decodes(monkeypatch) -> dict[str, CountingDecoder]:
    counters = {
        "fields": CountingDecoder(request_body._fields_decoder),
        "chat": CountingDecoder(request_body.chat_request_decoder),
        "embeddings": CountingDecoder(request_body.embeddings_request_decoder),
    }
    monkeypatch.setattr(request_body, "_fields_decoder", counters["fields"])
    monkeypatch.setattr(request_body, "chat_request_decoder", counters["chat"])
    monkeypatch.setattr(request_body, "embeddings_request_decoder", counters["embeddings"])
    return counters


def total(decodes: dict[str, CountingDecoder]) -> int:
    return sum(c.calls for c in decodes.values())


def upstream_request(body: bytes, *, stream: bool = False, cost_cap: float | None = None) -> UpstreamRequest:
    return UpstreamRequest(
        request_id="r",
        reply_to="x",
        operation=Operation.CHAT,
        model_group="g",
        deployment_id="d",
        body=body,
        stream=stream,
        include_usage=False,
        deadline=0.0,
        received_at=0.0,
        caller=Caller(key_hash="k"),
        cost_cap=cost_cap,
    )


PRICED = Deployment(
    id="d/0", model_name="g", provider="openai", upstream_model="m", input_cost_per_token=1e-6, output_cost_per_token=1e-5
)


def test_the_openai_family_path_decodes_the_body_once_across_tries_caps_and_estimates(decodes):
    raw = msgspec.json.encode(CHAT)
    body = RequestBody(raw)
    _, capped = apply_cost_cap(upstream_request(raw, cost_cap=0.001), body, PRICED, "m")
    first = msgspec.json.decode(rewrite_body(capped, "gpt-4o", False, ["Policy."]))
    again = msgspec.json.decode(rewrite_body(capped, "gpt-4o", False, ["Policy."]))  # a retry
    assert estimate_prompt_tokens(body) == 2
    assert total(decodes) == 1 and decodes["fields"].calls == 1
    assert first == again  # the shared dict was not changed by the first rewrite
    assert [m["content"] for m in first["messages"]] == ["Policy.", CHAT["messages"][0]["content"]]  # the prompt once
    assert first["model"] == "gpt-4o" and first["logit_bias"] == {"50256": -100} and "timeout" not in first
    assert first["max_tokens"] == 83  # (0.001 - 168 bytes * 1e-6) / 1e-5, rounded down
    assert json_value(body.fields()["max_tokens"]) == 500 and json_value(body.fields()["model"]) == "gpt-4"


def test_a_translating_adapter_path_decodes_the_body_once(decodes):
    body = RequestBody(msgspec.json.encode(CHAT))
    first = chat_request_to_anthropic(body.chat(), "claude-x", [], False)
    capped = body.with_completion_cap(40)
    second = chat_request_to_anthropic(capped.chat(), "claude-x", [], False)
    assert estimate_prompt_tokens(capped) == 2
    assert total(decodes) == 1 and decodes["chat"].calls == 1
    assert (first["max_tokens"], second["max_tokens"]) == (500, 40)
    assert body.chat() is body.chat()


def test_fields_the_gateway_does_not_change_are_forwarded_as_the_client_wrote_them():
    raw = b'{"model": "gpt-4", "messages": [ {"role": "user", "content": "caf\\u00e9"} ], "logprobs": true, "top_p": 1.0e0}'
    sent = rewrite_body(RequestBody(raw), "gpt-4o", False)
    assert sent == b'{"model":"gpt-4o","messages":[ {"role": "user", "content": "caf\\u00e9"} ],"logprobs":true,"top_p":1.0e0}'
    prompted = msgspec.json.decode(rewrite_body(RequestBody(raw), "gpt-4o", True, ["One.", "Two."]))
    assert [m["content"] for m in prompted["messages"]] == ["One.", "Two.", "café"]
    assert prompted["stream_options"] == {"include_usage": True}
    empty = msgspec.json.decode(rewrite_body(RequestBody(b'{"messages": [ ]}'), "m", False, ["One."]))
    assert empty["messages"] == [{"role": "system", "content": "One."}]


def test_a_typed_view_after_the_fields_is_built_from_them_not_decoded_again(decodes):
    body = RequestBody(msgspec.json.encode(CHAT))
    assert json_value(body.fields()["temperature"]) == 0.5
    assert body.chat().temperature == 0.5 and body.chat().messages[0].content[0].text == "12345678"
    assert total(decodes) == 1


@pytest.mark.parametrize(
    ("limits", "allowance", "capped"),
    [
        ({}, 50, {"max_tokens": 50}),
        ({"max_tokens": 10}, 50, {"max_tokens": 10}),
        ({"max_tokens": 100}, 50, {"max_tokens": 50}),
        ({"max_completion_tokens": 100}, 50, {"max_completion_tokens": 50}),
        ({"max_tokens": 100, "max_completion_tokens": 80}, 50, {"max_tokens": 50, "max_completion_tokens": 50}),
    ],
)
def test_the_cap_lowers_the_completion_limit_in_both_views(limits, allowance, capped):
    body = RequestBody(msgspec.json.encode({"messages": [{"role": "user", "content": "x"}], **limits}))
    view = body.with_completion_cap(allowance)
    fields = view.fields()
    assert {k: json_value(fields[k]) for k in ("max_tokens", "max_completion_tokens") if k in fields} == capped
    chat = RequestBody(body.raw).with_completion_cap(allowance).chat()
    assert (chat.max_tokens, chat.max_completion_tokens) == (capped.get("max_tokens"), capped.get("max_completion_tokens"))
    source = {name: json_value(value) for name, value in body.fields().items()}
    assert source == {"messages": [{"role": "user", "content": "x"}], **limits}  # the source is unchanged


def test_a_capped_stream_is_metered_and_an_uncapped_request_left_alone():
    raw = msgspec.json.encode(CHAT)
    body = RequestBody(raw)
    meter, same = apply_cost_cap(upstream_request(raw, stream=True, cost_cap=0.001), body, PRICED, "m")
    assert isinstance(meter, StreamMeter) and meter.allowance == 83 and same is body
    assert apply_cost_cap(upstream_request(raw), body, PRICED, "m") == (None, body)
    unpriced = msgspec.structs.replace(PRICED, input_cost_per_token=None, output_cost_per_token=None)
    assert apply_cost_cap(upstream_request(raw, cost_cap=0.001), body, unpriced, "my-own-model") == (None, body)


def test_bodies_that_do_not_fit_are_400s():
    with pytest.raises(UpstreamError) as err:
        RequestBody(b"[1, 2]").fields()
    assert err.value.status == 400
    with pytest.raises(UpstreamError) as err:
        RequestBody(b'{"messages": "hi"}').chat()
    assert err.value.status == 400 and "chat completions" in err.value.message
    with pytest.raises(UpstreamError) as err:
        RequestBody(b"not json").embeddings()
    assert err.value.status == 400


def test_prompt_estimates_for_chat_embeddings_and_unreadable_bodies():
    assert estimate_prompt_tokens(RequestBody(b'{"messages":[{"role":"user","content":"12345678"}]}')) == 2
    embeddings = RequestBody(b'{"model":"e","input":["1234","12345678"]}')
    assert estimate_prompt_tokens(embeddings, Operation.EMBEDDINGS) == 3
    assert estimate_prompt_tokens(RequestBody(b'{"model":"e","input":[[1,2,3]]}'), Operation.EMBEDDINGS) == 0
    assert estimate_prompt_tokens(RequestBody(b"x" * 40)) == 10  # not JSON: by its size
