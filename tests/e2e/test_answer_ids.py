"""A request is found in `/spend/logs?request_id=` by the `id` its answer carried, also when the
edge wrote that answer itself: a Messages request (`msg_...`) or a Responses request (`resp_...`)
served by a chat model, whole and streamed, through the official `anthropic` and `openai` SDKs.
The usage row records that id, not the upstream's `chatcmpl-...`."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, Stack, write_config
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
HELLO = [{"role": "user", "content": "Hello there"}]


CHAT_ONLY = "chat-only"  # an OpenAI deployment that takes no Responses requests: they are translated


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("answer-ids")
    config = write_config(root / "base.yaml", upstream.base_url).read_text()
    chat_only = (
        f"  - model_name: {CHAT_ONLY}\n    params:\n      model: openai/gpt-4o\n"
        f"      api_base: {upstream.base_url}\n      api_key: os.environ/E2E_UPSTREAM_KEY\n      responses_api: false\n"
    )
    s = Stack(
        root, nats_server.url, "e2eanswerids", upstream, {}, config=config.replace("model_list:\n", "model_list:\n" + chat_only)
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def key(stack) -> str:
    resp = httpx.post(f"{stack.base_url}/key/generate", json={"models": ["gpt-4", CHAT_ONLY]}, headers=ADMIN, timeout=15)
    assert resp.status_code == 200, resp.text
    return resp.json()["key"]


def rows_for(stack, answer_id: str) -> list[dict]:
    """The spend logs `/spend/logs?request_id=<answer id>` lists, once metering has the row."""

    def found() -> list[dict] | None:
        resp = httpx.get(f"{stack.base_url}/spend/logs", params={"request_id": answer_id}, headers=ADMIN, timeout=15)
        return resp.json() if resp.status_code == 200 and resp.json() else None

    return eventually_sync(found, f"the spend log of {answer_id}", timeout=30)


def assert_one_row(stack, answer_id: str, request_id: str, prefix: str, call_type: str = "chat") -> None:
    assert answer_id.startswith(prefix), answer_id
    rows = rows_for(stack, answer_id)
    assert len(rows) == 1, rows
    assert rows[0]["request_id"] == request_id and rows[0]["response_id"] == answer_id
    assert rows_for(stack, request_id) == rows  # llmgw's own id finds the same row
    assert rows[0]["call_type"] == call_type  # chat: served by a chat model, the edge wrote the answer


def test_a_translated_message_is_found_by_its_msg_id(stack, key):
    client = anthropic.Anthropic(base_url=stack.base_url, api_key=key, max_retries=0)
    raw = client.messages.with_raw_response.create(model="gpt-4", max_tokens=8, messages=HELLO)
    message = raw.parse()
    assert message.content and message.content[0].type == "text"
    assert_one_row(stack, message.id, raw.headers["x-request-id"], "msg_")


def test_a_translated_message_stream_is_found_by_its_msg_id(stack, key):
    client = anthropic.Anthropic(base_url=stack.base_url, api_key=key, max_retries=0)
    with client.messages.stream(model="gpt-4", max_tokens=8, messages=HELLO) as stream:
        request_id = stream.response.headers["x-request-id"]
        message = stream.get_final_message()
    assert message.stop_reason is not None
    assert_one_row(stack, message.id, request_id, "msg_")


def test_a_translated_response_is_found_by_its_resp_id(stack, key):
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    raw = client.responses.with_raw_response.create(model=CHAT_ONLY, input="Hello there")
    response = raw.parse()
    assert response.status == "completed" and response.output_text
    assert_one_row(stack, response.id, raw.headers["x-request-id"], "resp_")


def test_a_translated_response_stream_is_found_by_its_resp_id(stack, key):
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    with client.responses.with_streaming_response.create(model=CHAT_ONLY, input="Hello there", stream=True) as raw:
        request_id = raw.headers["x-request-id"]
        events = list(raw.parse())
    completed = [e for e in events if e.type == "response.completed"]
    assert len(completed) == 1
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert ids == {completed[0].response.id}  # every lifecycle event names the same response
    assert_one_row(stack, completed[0].response.id, request_id, "resp_")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_native_response_is_found_by_the_upstreams_resp_id(stack, key, stream: bool):
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    if not stream:
        raw = client.responses.with_raw_response.create(model="gpt-4", input="Hello there")
        response = raw.parse()
        assert_one_row(stack, response.id, raw.headers["x-request-id"], "resp_", "responses")
        return
    with client.responses.with_streaming_response.create(model="gpt-4", input="Hello there", stream=True) as relayed:
        request_id = relayed.headers["x-request-id"]
        events = list(relayed.parse())
    completed = [e for e in events if e.type == "response.completed"]
    assert len(completed) == 1
    assert_one_row(stack, completed[0].response.id, request_id, "resp_", "responses")
