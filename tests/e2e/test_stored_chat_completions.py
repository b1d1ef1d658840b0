"""Stored chat completions (`store: true`) through the official `openai` SDK, edge, worker and
metering as separate processes on a real nats-server in front of the fake OpenAI upstream: a
whole and a streamed completion stored, retrieved, listed (pages, order, metadata and model
filters), its metadata updated, its messages listed, deleted; read only by its key, its user and
its team (to anyone else, the master key too, a 404); nothing stored without `store: true` or
when the client cut the stream; one usage row per request."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest

from tests.e2e.responses_stack import new_key
from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream, wait_ready
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

MODEL = "gpt-4"
ASKED = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}]},
]


def client(stack: Stack, key: str, base: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}{base}", api_key=key, max_retries=0)


def owner(stack: Stack, **params: object) -> tuple[str, openai.OpenAI]:
    key = new_key(stack, user_id=params.pop("user_id", f"user-{uuid.uuid4().hex[:8]}"), **params)
    return key, client(stack, key)


def one_usage_row(stack: Stack, request_id: str) -> dict:
    """The request's usage rows, which must be exactly one."""
    stack.usage_rows([request_id])
    rows = stack.query("SELECT * FROM usage WHERE request_id = {id:String}", {"id": request_id})
    assert len(rows) == 1, rows
    return rows[0]


def test_a_stored_completion_is_retrieved_updated_listed_and_deleted(stack: Stack, upstream: FakeUpstream) -> None:
    key, sdk = owner(stack)
    raw = sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=ASKED, store=True, metadata={"topic": "greeting", "tags": "x"}, max_tokens=6
    )
    made = raw.parse()
    sent = upstream.stats()["last_request"]
    assert "store" not in sent  # the gateway keeps it; the upstream is not asked to
    fetched = sdk.chat.completions.retrieve(made.id)
    assert fetched.id == made.id and fetched.object == "chat.completion"
    assert fetched.choices[0].message.content == made.choices[0].message.content
    assert fetched.usage == made.usage and fetched.model == made.model and fetched.created == made.created
    assert fetched.metadata == {"topic": "greeting", "tags": "x"}

    messages = sdk.chat.completions.messages.list(made.id)
    assert [m.role for m in messages.data] == ["system", "user"]
    assert [m.content for m in messages.data] == ["be brief", "hello there"]
    assert messages.data[1].content_parts[1].text == "there" and messages.data[0].content_parts is None
    assert [m.id for m in messages.data] == [f"{made.id}-0", f"{made.id}-1"] and messages.has_more is False
    newest = sdk.chat.completions.messages.list(made.id, order="desc", limit=1)
    assert [m.content for m in newest.data] == ["hello there"] and newest.has_more
    rest = sdk.chat.completions.messages.list(made.id, order="desc", after=newest.data[0].id)
    assert [m.content for m in rest.data] == ["be brief"] and not rest.has_more

    updated = sdk.chat.completions.update(made.id, metadata={"topic": "farewell"})
    assert updated.id == made.id and updated.metadata == {"topic": "farewell"}
    assert sdk.chat.completions.retrieve(made.id).metadata == {"topic": "farewell"}
    assert [c.id for c in sdk.chat.completions.list(metadata={"topic": "farewell"}).data] == [made.id]
    assert sdk.chat.completions.list(metadata={"topic": "greeting"}).data == []

    for base in ("", "/openai/v1", "/openai"):  # the aliases every OpenAI route has
        got = httpx.get(f"{stack.base_url}{base}/chat/completions/{made.id}", headers={"authorization": f"Bearer {key}"})
        assert got.status_code == 200 and got.json()["id"] == made.id
        listed = httpx.get(f"{stack.base_url}{base}/chat/completions", headers={"authorization": f"Bearer {key}"})
        assert listed.status_code == 200 and [c["id"] for c in listed.json()["data"]] == [made.id]

    deleted = sdk.chat.completions.delete(made.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (made.id, "chat.completion.deleted", True)
    with pytest.raises(openai.NotFoundError) as err:
        sdk.chat.completions.retrieve(made.id)
    assert err.value.body["code"] == "not_found" and err.value.body["type"] == "invalid_request_error"
    assert sdk.chat.completions.list().data == []
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.delete(made.id)
    request_id = raw.headers["x-request-id"]
    assert made.id == "chatcmpl-" + request_id.removeprefix("req-")  # the gateway's id: unique, whatever the upstream's
    row = one_usage_row(stack, request_id)
    assert row["status"] == "success" and row["completion_tokens"] == made.usage.completion_tokens
    assert row["response_id"] == made.id  # /spend/logs?request_id=<completion id> finds it


def test_the_list_pages_orders_and_filters(stack: Stack) -> None:
    _, sdk = owner(stack)
    made = [
        sdk.chat.completions.create(model=MODEL, messages=ASKED, store=True, metadata={"run": "r1", "i": str(i)}, max_tokens=2)
        for i in range(3)
    ]
    other = sdk.chat.completions.create(model="gpt-3.5-turbo", messages=ASKED, store=True, metadata={"run": "r2"}, max_tokens=2)
    sdk.chat.completions.create(model=MODEL, messages=ASKED, max_tokens=2)  # not stored
    ids = [c.id for c in made] + [other.id]

    first = sdk.chat.completions.list(limit=2)  # oldest first, as OpenAI lists them
    assert [c.id for c in first.data] == ids[:2] and first.has_more
    assert first.first_id == ids[0] and first.last_id == ids[1]
    second = sdk.chat.completions.list(limit=2, after=first.last_id)
    assert [c.id for c in second.data] == ids[2:] and not second.has_more
    assert [c.id for c in sdk.chat.completions.list(limit=2)] == ids  # the SDK's own paging through every page
    assert [c.id for c in sdk.chat.completions.list(order="desc").data] == ids[::-1]
    assert [c.id for c in sdk.chat.completions.list(metadata={"run": "r1"}, limit=1)] == ids[:3]
    assert [c.id for c in sdk.chat.completions.list(metadata={"run": "r1", "i": "1"}).data] == [ids[1]]
    assert [c.id for c in sdk.chat.completions.list(model="gpt-3.5-turbo").data] == [other.id]
    assert sdk.chat.completions.list(metadata={"run": "r3"}).data == []
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.list(after="chatcmpl-unknown")
    assert err.value.body["param"] == "after"
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.list(limit=1000)
    assert err.value.body["param"] == "limit"


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_streamed_completion_is_stored_whole(stack: Stack, include_usage: bool) -> None:
    _, sdk = owner(stack)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    raw = sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=ASKED, store=True, stream=True, metadata={"kind": "stream"}, max_tokens=5, **options
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == (1 if include_usage else 0)  # what the client asked for, no more
    stored = sdk.chat.completions.retrieve(chunks[0].id)
    assert stored.object == "chat.completion" and stored.id == chunks[0].id
    assert stored.choices[0].message.content == text and stored.choices[0].message.role == "assistant"
    assert stored.choices[0].finish_reason == "length" and stored.metadata == {"kind": "stream"}
    assert stored.usage is not None and stored.usage.completion_tokens == 5  # kept, asked for or not
    if include_usage:
        assert stored.usage == usage_chunks[0].usage
    request_id = raw.headers["x-request-id"]
    assert {c.id for c in chunks} == {"chatcmpl-" + request_id.removeprefix("req-")}  # every chunk: the stored id
    row = one_usage_row(stack, request_id)
    assert row["status"] == "success" and row["completion_tokens"] == 5 and row["response_id"] == stored.id
    assert [m.content for m in sdk.chat.completions.messages.list(stored.id).data] == ["be brief", "hello there"]


def test_a_stream_the_client_cut_is_not_stored(stack: Stack) -> None:
    key, sdk = owner(stack)
    body = {"model": "chunky", "messages": ASKED, "store": True, "stream": True, "max_tokens": 60}  # 60 ms a word
    with httpx.stream(
        "POST", f"{stack.base_url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=10
    ) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
    completion_id = json.loads(first.removeprefix("data: "))["id"]
    row = one_usage_row(stack, request_id)  # the worker finished with the request
    assert row["completion_tokens"] < 60
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.retrieve(completion_id)
    assert sdk.chat.completions.list().data == []


def test_a_stream_the_upstream_broke_is_not_stored(stack: Stack) -> None:
    _, sdk = owner(stack)
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        for c in sdk.chat.completions.create(model="stream-fail", messages=ASKED, store=True, stream=True, max_tokens=10):
            seen.append(c.id)
    assert seen  # part of an answer came, then the error
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.retrieve(seen[0])
    assert sdk.chat.completions.list().data == []


def test_nothing_is_stored_without_store_true(stack: Stack) -> None:
    _, sdk = owner(stack)
    absent = sdk.chat.completions.create(model=MODEL, messages=ASKED, max_tokens=2)
    off = sdk.chat.completions.create(model=MODEL, messages=ASKED, max_tokens=2, store=False)
    streamed = list(sdk.chat.completions.create(model=MODEL, messages=ASKED, max_tokens=2, stream=True))
    for completion_id in (absent.id, off.id, streamed[0].id):
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.retrieve(completion_id)
    assert sdk.chat.completions.list().data == []


def test_only_its_key_user_and_team_read_it(stack: Stack) -> None:
    team = httpx.post(
        f"{stack.base_url}/team/new", json={"team_id": "stored-chat-team"}, headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    assert team.status_code == 200, team.text
    _, maker = owner(stack, user_id="chat-maker", team_id="stored-chat-team")
    made = maker.chat.completions.create(model=MODEL, messages=ASKED, store=True, max_tokens=2)
    _, same_user = owner(stack, user_id="chat-maker")
    _, teammate = owner(stack, user_id="chat-teammate", team_id="stored-chat-team")
    for reader in (same_user, teammate):
        assert reader.chat.completions.retrieve(made.id).id == made.id
        assert [c.id for c in reader.chat.completions.list().data] == [made.id]
    _, stranger = owner(stack, user_id="chat-stranger")
    master = client(stack, MASTER_KEY)
    for other in (stranger, master):  # the master key too, as with stored responses
        calls = other.chat.completions
        for method, args in (
            (calls.retrieve, {}),
            (calls.update, {"metadata": {"x": "y"}}),
            (calls.messages.list, {}),
            (calls.delete, {}),
        ):
            with pytest.raises(openai.NotFoundError) as err:
                method(made.id, **args)
            assert err.value.body["message"] == f"Chat completion with id '{made.id}' not found."
        assert made.id not in [c.id for c in other.chat.completions.list().data]
    assert maker.chat.completions.retrieve(made.id).metadata == {}  # untouched for its owners
    missing = httpx.get(f"{stack.base_url}/v1/chat/completions/{made.id}")
    assert missing.status_code == 401


def test_a_completion_larger_than_a_bus_message_is_stored_apart_and_still_its_owners(stack: Stack) -> None:
    _, sdk = owner(stack)
    big = "word " * 300_000  # 1.5 MB of messages: more than one NATS message (1 MiB) holds
    made = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": big}], store=True, metadata={"size": "big"}, max_tokens=2
    )
    assert sdk.chat.completions.retrieve(made.id).choices[0].message.content == made.choices[0].message.content
    assert sdk.chat.completions.messages.list(made.id).data[0].content == big
    assert [c.id for c in sdk.chat.completions.list(metadata={"size": "big"}).data] == [made.id]
    assert sdk.chat.completions.update(made.id, metadata={"size": "still big"}).metadata == {"size": "still big"}
    assert sdk.chat.completions.messages.list(made.id).data[0].content == big
    _, stranger = owner(stack)
    with pytest.raises(openai.NotFoundError):
        stranger.chat.completions.retrieve(made.id)
    sdk.chat.completions.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.messages.list(made.id)


def test_bad_updates_are_openai_errors(stack: Stack) -> None:
    key, sdk = owner(stack)
    made = sdk.chat.completions.create(model=MODEL, messages=ASKED, store=True, max_tokens=2)
    url = f"{stack.base_url}/v1/chat/completions/{made.id}"
    headers = {"authorization": f"Bearer {key}"}
    for body, param in (
        ({}, "metadata"),
        ({"metadata": "x"}, "metadata"),
        ({"metadata": {"a": 1}}, "metadata.a"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ):
        answer = httpx.post(url, json=body, headers=headers)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text
    cleared = sdk.chat.completions.update(made.id, metadata=None)
    assert cleared.metadata == {}
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model=MODEL, messages=ASKED, store="yes")  # type: ignore[arg-type]


def test_stored_completions_outlive_an_edge_killed_and_started_again(stack: Stack) -> None:
    """Kept in JetStream, not in the edge: a crashed edge's replacement serves them (last here:
    the module's other tests run before the edge is killed)."""
    _, sdk = owner(stack)
    whole = sdk.chat.completions.create(model=MODEL, messages=ASKED, store=True, max_tokens=3)
    streamed = list(sdk.chat.completions.create(model=MODEL, messages=ASKED, store=True, stream=True, max_tokens=3))
    # (A record is written just after its answer is sent: the kill comes once both are kept.)
    eventually_sync(lambda: len(sdk.chat.completions.list().data) == 2, "both completions stored")
    stack.edge.kill()
    stack.edge.start()
    wait_ready(stack.base_url, 45)
    assert [c.id for c in sdk.chat.completions.list().data] == [whole.id, streamed[0].id]
    assert sdk.chat.completions.retrieve(streamed[0].id).choices[0].message.content == "".join(
        c.choices[0].delta.content or "" for c in streamed if c.choices
    )
