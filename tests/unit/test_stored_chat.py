"""Stored chat completions' pure parts: a stream put back together as a ChatCompletion, the
owners' index keys, the listing's order, filters and query string, the body the worker gets, the
usage-only chunk a stream keeps for the record, the metadata an update takes, and the messages
as OpenAI lists them."""

from __future__ import annotations

import json

import msgspec
import pytest

from gateway.errors import GatewayError
from gateway.kept_records import owned_by
from gateway.openai_api import OPENAI_STREAM
from gateway.paging import paged
from gateway.stored_chat.assemble import ChunkAssembler
from gateway.stored_chat.keeping import StoringStream, keeping, stored_id
from gateway.stored_chat.listing import listing_of
from gateway.stored_chat.routes import metadata_of, stored_message
from gateway.stored_chat.store import (
    ChatCompletionStore,
    Listing,
    matches,
    new_record,
    ordered,
    string_metadata,
    with_metadata,
)
from llmgw.contracts import (
    Caller,
    StoredChatCompletion,
    Subjects,
    chat_owner_keys,
    chat_owner_prefixes,
    kv_key,
    parse_chat_owner_key,
)

pytestmark = pytest.mark.unit


def chunk(**fields: object) -> bytes:
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "gpt-4o", **fields}).encode()


def delta(index: int = 0, finish: str | None = None, **d: object) -> dict:
    return {"index": index, "delta": d, "finish_reason": finish}


def test_a_stream_is_put_back_together_as_a_chat_completion() -> None:
    assembler = ChunkAssembler()
    for data in (
        chunk(choices=[delta(role="assistant", content="")]),
        chunk(choices=[delta(content="Hel")]),
        chunk(choices=[delta(content="lo"), delta(index=1, content="Hi")]),
        chunk(
            choices=[
                delta(
                    tool_calls=[
                        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a"'}}
                    ]
                )
            ]
        ),
        chunk(choices=[delta(tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}])]),
        chunk(choices=[delta(finish="tool_calls"), delta(index=1, finish="stop")]),
        chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
    ):
        assert assembler.feed(data) is not None
    assert assembler.feed(b"not json") is None
    completion = assembler.completion()
    assert completion["id"] == "chatcmpl-1" and completion["object"] == "chat.completion"
    assert (completion["created"], completion["model"]) == (7, "gpt-4o")
    first, second = completion["choices"]
    assert first["message"]["content"] == "Hello" and first["finish_reason"] == "tool_calls"
    assert first["message"]["tool_calls"] == [
        {"type": "function", "id": "call_1", "function": {"name": "get", "arguments": '{"a": 1}'}}
    ]
    assert second == {
        "index": 1,
        "message": {"role": "assistant", "content": "Hi", "refusal": None},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert completion["usage"]["total_tokens"] == 7


def test_a_refusal_and_no_content_stay_apart() -> None:
    assembler = ChunkAssembler()
    assembler.feed(chunk(choices=[delta(refusal="I can't")]))
    assembler.feed(chunk(choices=[delta(finish="stop")]))
    message = assembler.completion()["choices"][0]["message"]
    assert message == {"role": "assistant", "content": None, "refusal": "I can't"}
    assert assembler.completion()["usage"] is None


def record(rid: str, created: float, **fields: object) -> StoredChatCompletion:
    return StoredChatCompletion(id=rid, key_hash="k1", created_at=created, **fields)  # type: ignore[arg-type]


def test_each_owner_has_an_index_key_that_names_the_time_and_the_id() -> None:
    stored = StoredChatCompletion(id="chatcmpl-a", key_hash="k1", user_id="ann@example.com", team_id="t1", created_at=12.5)
    keys = chat_owner_keys(stored)
    assert keys == [
        f"own.k.{kv_key('k1')}.000000000012500.chatcmpl-a",
        f"own.u.{kv_key('ann@example.com')}.000000000012500.chatcmpl-a",
        f"own.t.{kv_key('t1')}.000000000012500.chatcmpl-a",
    ]
    assert all(parse_chat_owner_key(k) == (12500, "chatcmpl-a") for k in keys)
    assert parse_chat_owner_key("chatcmpl-a") is None and parse_chat_owner_key("own.k.x.notanumber.id") is None
    assert chat_owner_prefixes("k1", None, None) == [f"own.k.{kv_key('k1')}"]  # no user, no team: the key's alone
    assert [k.rsplit(".", 2)[0] for k in keys] == chat_owner_prefixes("k1", "ann@example.com", "t1")
    assert owned_by(stored, Caller(key_hash="k9", team_id="t1")) and not owned_by(stored, Caller(key_hash="k9"))


def test_the_listing_orders_by_time_then_id_and_starts_after_an_id() -> None:
    found = {"b": 2, "a": 2, "c": 1, "d": 3}
    assert ordered(found, "asc", None) == ["c", "a", "b", "d"]
    assert ordered(found, "desc", None) == ["d", "b", "a", "c"]
    assert ordered(found, "asc", "a") == ["b", "d"]
    assert ordered(found, "desc", "a") == ["c"]
    assert ordered(found, "asc", "zz") is None


def test_the_filters_match_metadata_pairs_and_either_model() -> None:
    stored = record("x", 1, model="gpt-4", metadata={"run": "r1", "i": "2"}, completion={"model": "gpt-4o-2024"})
    assert matches(stored, Listing())
    assert matches(stored, Listing(metadata={"run": "r1"})) and matches(stored, Listing(metadata={"run": "r1", "i": "2"}))
    assert not matches(stored, Listing(metadata={"run": "r2"})) and not matches(stored, Listing(metadata={"other": "r1"}))
    assert matches(stored, Listing(model="gpt-4")) and matches(stored, Listing(model="gpt-4o-2024"))
    assert not matches(stored, Listing(model="claude"))


def test_the_query_string_is_read_as_openai_sends_it() -> None:
    listing = listing_of(b"after=chatcmpl-1&limit=5&order=desc&metadata%5Brun%5D=r1&metadata[i]=2&model=gpt-4")
    assert listing == Listing(after="chatcmpl-1", limit=5, order="desc", metadata={"run": "r1", "i": "2"}, model="gpt-4")
    assert listing_of(b"") == Listing(limit=20, order="asc")
    for bad, param in ((b"limit=0", "limit"), (b"limit=101", "limit"), (b"order=up", "order"), (b"after=", "after")):
        with pytest.raises(GatewayError) as err:
            listing_of(bad)
        assert (err.value.status, err.value.param) == (400, param)


def test_the_worker_gets_the_body_without_store_and_the_record_the_messages_and_string_metadata() -> None:
    store = ChatCompletionStore(Subjects("t"), 30)
    body = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "store": True, "metadata": {"a": "1", "tags": ["x"]}}
    ).encode()
    state, sent = keeping(store, "m", body)
    assert json.loads(sent) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"a": "1", "tags": ["x"]},
    }
    assert state.messages == [{"role": "user", "content": "hi"}] and state.metadata == {"a": "1"}
    assert string_metadata("nope") == {} and string_metadata({"k": 1}) == {}


def test_a_record_keeps_the_completion_with_its_metadata_and_an_update_changes_both() -> None:
    caller = Caller(key_hash="k1", user_id="u1", team_id="t1")
    stored = new_record({"id": "chatcmpl-z", "object": "chat.completion"}, caller, "m", [], {"a": "1"}, created_at=5.0)
    assert (stored.id, stored.user_id, stored.team_id, stored.created_at) == ("chatcmpl-z", "u1", "t1", 5.0)
    assert stored.completion["metadata"] == {"a": "1"}
    changed = with_metadata(stored, {"b": "2"})
    assert changed.metadata == {"b": "2"} and changed.completion == {
        "id": "chatcmpl-z",
        "object": "chat.completion",
        "metadata": {"b": "2"},
    }
    assert msgspec.json.decode(msgspec.json.encode(changed), type=StoredChatCompletion) == changed


class _Stored:
    """A Keeping stand-in: what StoringStream calls."""

    def __init__(self, client_usage: bool) -> None:
        self.client_usage = client_usage
        self.kept: list[dict] = []

    def keep(self, completion: dict) -> None:
        self.kept.append(completion)


@pytest.mark.parametrize("client_usage", [False, True])
def test_a_stored_stream_drops_the_usage_chunk_only_the_record_asked_for(client_usage: bool) -> None:
    state = _Stored(client_usage)
    stream = StoringStream(state, OPENAI_STREAM, "chatcmpl-mine")  # type: ignore[arg-type]
    usage = chunk(choices=[], usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    out = stream.data([chunk(choices=[delta(content="hi", finish="stop")]), usage])
    assert out.count(b"data: ") == (2 if client_usage else 1)
    assert out.count(b'"id":"chatcmpl-mine"') == out.count(b"data: ") and b"chatcmpl-1" not in out  # the stored id
    assert state.kept == []  # nothing until the stream ends as the worker finished it
    assert stream.end() == b"data: [DONE]\n\n"
    assert (
        state.kept[0]["id"] == "chatcmpl-mine"
        and state.kept[0]["usage"]["total_tokens"] == 3
        and state.kept[0]["choices"][0]["message"]["content"] == "hi"
    )


def test_an_update_takes_openais_metadata_only() -> None:
    assert metadata_of(b'{"metadata": {"a": "1"}}') == {"a": "1"}
    assert metadata_of(b'{"metadata": null}') == {}
    for bad, param in (
        (b"{", None),
        (b"{}", "metadata"),
        (b'{"metadata": []}', "metadata"),
        (b'{"metadata": {"a": 1}}', "metadata.a"),
        (json.dumps({"metadata": {"a": "x" * 513}}).encode(), "metadata.a"),
        (json.dumps({"metadata": {"k" * 65: "x"}}).encode(), f"metadata.{'k' * 65}"),
        (json.dumps({"metadata": {str(i): "x" for i in range(17)}}).encode(), "metadata"),
    ):
        with pytest.raises(GatewayError) as err:
            metadata_of(bad)
        assert (err.value.status, err.value.param) == (400, param)


def test_messages_are_listed_with_ids_text_and_parts() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}, {"type": "text", "text": "b"}]
    assert stored_message({"role": "user", "content": parts}, "chatcmpl-1", 3) == {
        "role": "user",
        "content": "ab",
        "content_parts": parts,
        "id": "chatcmpl-1-3",
    }
    assert stored_message({"role": "system", "content": "s"}, "c", 0) == {
        "role": "system",
        "content": "s",
        "content_parts": None,
        "id": "c-0",
    }
    items = [{"id": str(i)} for i in range(5)]
    page = paged(items, 2, "desc", "3", "message")
    assert page == {"object": "list", "data": [{"id": "2"}, {"id": "1"}], "first_id": "2", "last_id": "1", "has_more": True}
    assert paged(items, 2, "asc", None, "message")["data"] == [{"id": "0"}, {"id": "1"}]
    with pytest.raises(GatewayError):
        paged(items, 2, "asc", "9", "message")


def test_a_whole_answer_gets_the_stored_id_and_is_kept() -> None:
    store = ChatCompletionStore(Subjects("t"), 30)
    kept: list[StoredChatCompletion] = []
    store.keep = kept.append  # type: ignore[method-assign]  # (the write itself needs the bus)
    state, _ = keeping(store, "m", b'{"model":"m","messages":[],"store":true}')
    state.caller = Caller(key_hash="k1")
    body = state.keep_whole(b'{"id":"chatcmpl-upstream","object":"chat.completion","choices":[]}', stored_id("req-ab12"))
    assert json.loads(body) == {"id": "chatcmpl-ab12", "object": "chat.completion", "choices": []}
    assert [r.id for r in kept] == ["chatcmpl-ab12"] and kept[0].completion == {**json.loads(body), "metadata": {}}
    assert state.keep_whole(b"[1]", "chatcmpl-x") == b"[1]" and len(kept) == 1  # not a completion: as it came
