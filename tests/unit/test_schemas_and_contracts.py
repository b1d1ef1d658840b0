from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.router import ModelRouter
from gateway.schemas import parse_chat, parse_embeddings
from llmgw.config import load_config
from llmgw.contracts import (
    Caller,
    Chunks,
    Completed,
    Failed,
    Subjects,
    UpstreamRequest,
    decode_reply,
    decode_request,
    encode_internal,
)

pytestmark = pytest.mark.unit


def test_chat_body_keeps_unknown_fields_out_of_validation():
    req = parse_chat(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"x":1}],"stream":true}')
    assert req.model == "m" and req.stream is True


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model":"m","messages":[{"role":"user","content":5}]}', "messages[0].content"),
        (b'{"model":"m","messages":[{"content":"x"}]}', "messages[0].role"),
        (b'{"model":"","messages":[{"role":"user","content":"x"}]}', "model"),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":7}', "temperature"),
        (b'{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}', "max_tokens"),
        (b"[]", None),
    ],
)
def test_invalid_chat_bodies_name_the_field(body, param):
    with pytest.raises(GatewayError) as err:
        parse_chat(body)
    assert err.value.status == 400 and err.value.param == param


def test_embeddings_input_must_not_be_empty():
    with pytest.raises(GatewayError) as err:
        parse_embeddings(b'{"model":"m","input":[]}')
    assert err.value.param == "input"
    assert parse_embeddings(b'{"model":"m","input":[[1,2],[3]]}').input == [[1, 2], [3]]


def test_router_prefers_exact_names_then_the_most_specific_wildcard():
    cfg = load_config(None, env={"OPENAI_API_KEY": "k", "GROQ_API_KEY": "g"})
    router = ModelRouter(cfg.deployments)
    assert router.pick("groq/llama3").model_name == "groq/*"
    assert router.pick("gpt-4o").model_name == "*"
    empty = ModelRouter(())
    with pytest.raises(GatewayError) as err:
        empty.pick("gpt-4o")
    assert err.value.status == 404 and err.value.code == "model_not_found"


def test_bus_messages_round_trip():
    req = UpstreamRequest(
        request_id="r1",
        reply_to="x.reply.e",
        operation="chat",
        model_group="m",
        deployment_id="m/0",
        body=b'{"a": "\\u00e9"}',
        stream=True,
        include_usage=False,
        deadline=1.5,
        received_at=1.0,
        caller=Caller(key_hash="h", user_id="u"),
    )
    assert decode_request(encode_internal(req)) == req
    for reply in (
        Chunks(request_id="r1", seq=0, data=[b"{}", b'{"x":1}'], done=True),
        Completed(request_id="r1", body=b"{}"),
        Failed(request_id="r1", status=429, message="slow down", type="rate_limit_error", retry_after=1.0),
    ):
        assert decode_reply(encode_internal(reply)) == reply


def test_subjects_are_namespaced():
    s = Subjects("t1")
    assert s.request("openai") == "t1.req.openai" and s.requests_stream == "T1_REQUESTS"
    assert s.usage("openai", "success").startswith("t1.usage.")
    with pytest.raises(ValueError):
        Subjects("a.b")
