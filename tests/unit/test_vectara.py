"""Vectara query converters: corpus key, query body, estimated usage, stream events, errors."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from llmgw.config import Deployment, Secret
from tests.unit.openai_requests import chat_messages, chat_request
from workers.providers.errors import UpstreamError
from workers.providers.vectara import (
    VectaraStreamTranslator,
    _event_decoder,
    chat_request_to_vectara_query,
    corpus_key,
    last_user_text,
    query_usage,
    vectara_answer_to_chat_completion,
    vectara_error_to_upstream_error,
)
from workers.usage import Usage

pytestmark = pytest.mark.unit

KEY = "zqt_live_secret_42"
DEPLOYMENT = Deployment(
    id="v/0", model_name="v", provider="vectara", upstream_model="docs", api_base="http://x", api_key=Secret(KEY)
)
ESTIMATED = "estimated" in Usage.__struct_fields__  # whether Usage can say it was estimated yet


def decode(raw: bytes) -> dict:
    return msgspec.json.decode(raw)


def with_extra(**extra) -> Deployment:
    return msgspec.structs.replace(DEPLOYMENT, extra=tuple(extra.items()))


def test_corpus_key_comes_from_the_option_else_the_model_name():
    assert corpus_key(DEPLOYMENT, "docs") == "docs"
    assert corpus_key(with_extra(vectara_corpus_key=Secret("handbook")), "docs") == "handbook"
    assert corpus_key(with_extra(vectara_corpus_key="plain"), "docs") == "plain"


def test_the_query_is_the_last_user_message_alone():
    messages = [
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
    ]
    assert last_user_text(chat_messages(messages)) == "second\nquestion"
    for bad in ([{"role": "system", "content": "x"}], [{"role": "user", "content": "  "}], None):
        with pytest.raises(UpstreamError) as err:
            last_user_text(chat_messages(bad))
        assert err.value.status == 400


def test_query_body_has_search_generation_and_the_stream_flag():
    body = {"messages": [{"role": "user", "content": "What is RAG?"}], "max_tokens": 50, "temperature": 0.2}
    out, query = chat_request_to_vectara_query(
        chat_request(body), with_extra(vectara_generation_preset_name="mockingbird-2.0"), stream=True
    )
    assert query == "What is RAG?"
    assert out == {
        "query": "What is RAG?",
        "search": {"limit": 10},
        "generation": {
            "max_used_search_results": 5,
            "generation_preset_name": "mockingbird-2.0",
            "model_parameters": {"max_tokens": 50, "temperature": 0.2},
        },
        "stream_response": True,
    }
    plain, _ = chat_request_to_vectara_query(
        chat_request({"messages": [{"role": "user", "content": "q"}]}), DEPLOYMENT, stream=False
    )
    assert plain["generation"] == {"max_used_search_results": 5} and plain["stream_response"] is False
    with pytest.raises(UpstreamError):
        chat_request_to_vectara_query(chat_request({**body, "tools": [{"type": "function"}]}), DEPLOYMENT, False)


def test_usage_is_estimated_from_the_query_and_the_summary():
    usage = query_usage("12345678", "w0 w1 w2 w3 w4 w5 w6 w7")  # 8 and 23 characters
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, 6)
    if ESTIMATED:
        assert usage.estimated
    out = decode(vectara_answer_to_chat_completion("The summary.", "docs", usage))
    assert out["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "The summary."}, "finish_reason": "stop"}
    assert out["usage"] == {"prompt_tokens": 2, "completion_tokens": 6, "total_tokens": 8} and out["object"] == "chat.completion"


def feed_all(translator: VectaraStreamTranslator, *docs: bytes) -> list:
    return [item for d in docs for item in translator.feed(_event_decoder.decode(d))]


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_chunks_end_at_generation_end_and_the_stream_at_end(include_usage):
    translator = VectaraStreamTranslator(DEPLOYMENT, "docs", "12345678", include_usage)
    items = feed_all(
        translator,
        b'{"type":"search_results","search_results":[{"text":"p","score":0.9}]}',
        b'{"type":"generation_chunk","generation_chunk":"Hello"}',
        b'{"type":"generation_chunk","generation_chunk":" world"}',
        b'{"type":"generation_end"}',
    )
    assert not translator.finished
    items += feed_all(translator, b'{"type":"factual_consistency_score","factual_consistency_score":0.8}', b'{"type":"end"}')
    assert translator.finished
    chunks = [decode(i) for i in items if isinstance(i, bytes)]
    assert [c["choices"][0]["delta"] for c in chunks[:4]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": " world"},
        {},
    ]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    usage = [i for i in items if isinstance(i, Usage)]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(2, 3)]  # 8 and 11 characters
    assert (chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5) if include_usage else len(chunks) == 4


def test_end_without_generation_end_still_finishes_the_answer():
    translator = VectaraStreamTranslator(DEPLOYMENT, "docs", "q", False)
    assert feed_all(translator, b'{"type":"search_results","search_results":[]}') == []  # nothing before the answer starts
    items = feed_all(translator, b'{"type":"generation_chunk","generation_chunk":"abcd"}', b'{"type":"end"}')
    assert translator.finished and decode(items[-2])["choices"][0]["finish_reason"] == "stop" and isinstance(items[-1], Usage)


def test_an_error_event_fails_the_stream_without_the_key():
    translator = VectaraStreamTranslator(DEPLOYMENT, "docs", "q", False)
    with pytest.raises(UpstreamError) as err:
        feed_all(translator, f'{{"type":"error","messages":["key {KEY} expired"]}}'.encode())
    assert err.value.status == 502 and KEY not in err.value.message and "expired" in err.value.message


@pytest.mark.parametrize(("status", "client_status"), [(400, 400), (404, 404), (429, 429), (401, 502), (403, 502), (500, 502)])
def test_upstream_errors_map_to_client_statuses(status, client_status):
    body = f'{{"messages":["Bad request {KEY}"],"field_errors":{{"query":"must not be empty"}},"request_id":"r1"}}'.encode()
    err = vectara_error_to_upstream_error(status, body, httpx.Headers({"retry-after": "3"}), DEPLOYMENT)
    assert err.status == client_status and KEY not in err.message
    if status == 400:
        assert err.message == "Bad request ***; query: must not be empty"
    if status == 429:
        assert err.retry_after == 3.0
