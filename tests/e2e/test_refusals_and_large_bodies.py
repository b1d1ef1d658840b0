"""What the pipeline does around the call itself: a usage row for every request refused after the
caller was known (and none for an unauthenticated one), and bodies too large for one bus message
carried through the blobs object store."""

from __future__ import annotations

import asyncio

import httpx
import nats
import pytest

from llmgw.contracts import Subjects
from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import log_events
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e


def post(stack: Stack, key: str, body: dict | bytes, timeout: float = 30) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if isinstance(body, bytes):
        return httpx.post(f"{stack.base_url}/v1/chat/completions", content=body, headers=headers, timeout=timeout)
    return httpx.post(f"{stack.base_url}/v1/chat/completions", json=body, headers=headers, timeout=timeout)


def new_key(stack: Stack, **params: object) -> str:
    resp = httpx.post(f"{stack.base_url}/key/generate", json=params, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert resp.status_code == 200, resp.text
    return resp.json()["key"]


HELLO = [{"role": "user", "content": "Hello there"}]


def test_each_refusal_after_authentication_is_one_usage_row(stack):
    key = new_key(stack, models=["gpt-4"], max_budget=0.0000001)
    refusals = {
        "bad body": (post(stack, key, b'{"model": "gpt-4", "messages": "not a list"}'), 400, "invalid_request_error"),
        "model not allowed": (post(stack, key, {"model": "gpt-3.5-turbo", "messages": HELLO}), 403, "permission_denied"),
        "over budget": (post(stack, key, {"model": "gpt-4", "messages": HELLO, "max_tokens": 500}), 429, "budget_exceeded"),
        "unknown model": (post(stack, MASTER_KEY, {"model": "no-such-model", "messages": HELLO}), 404, "model_not_found"),
    }
    ids = {}
    for what, (resp, status, code) in refusals.items():
        assert resp.status_code == status, (what, resp.text)
        assert resp.json()["error"]["code"] == code, what
        ids[what] = resp.headers["x-request-id"]
    rows = stack.usage_rows(list(ids.values()))
    for what, (_, status, code) in refusals.items():
        row = rows[ids[what]]
        assert (row["status"], row["http_status"], row["error_code"]) == ("refused", status, code), what
        assert (row["cost"], row["prompt_tokens"], row["completion_tokens"]) == (0, 0, 0), what
    assert rows[ids["model not allowed"]]["model_group"] == "gpt-3.5-turbo"
    assert rows[ids["over budget"]]["provider"] == "openai"  # refused after a deployment was chosen

    # No key, or a wrong one: an answer and a log line, no row.
    unknown = post(stack, "sk-not-a-key", {"model": "gpt-4", "messages": HELLO})
    assert unknown.status_code == 401
    unknown_id = unknown.headers["x-request-id"]
    eventually_sync(lambda: log_events(stack.edge.output(), "request", request_id=unknown_id), "the 401's log line", 10)
    later = post(stack, MASTER_KEY, {"model": "no-such-model", "messages": HELLO})
    stack.usage_rows([later.headers["x-request-id"]])  # (rows after the 401 have landed)
    assert not stack.query("SELECT request_id FROM usage WHERE request_id = {id:String}", {"id": unknown_id})


def blob_names(stack: Stack, put: str | None = None) -> list[str]:
    """The bodies in the blobs store (after putting one named `put`, to show the listing works)."""

    async def names() -> list[str]:
        nc = await nats.connect(stack.nats_url)
        try:
            store = await nc.jetstream().object_store(Subjects(stack.prefix).blobs_bucket)
            if put is not None:
                await store.put(put, b"probe")
            try:
                listed = [info.name for info in await store.list(ignore_deletes=True)]
            except Exception:  # nats-py raises when the store is empty
                listed = []
            if put is not None:
                await store.delete(put)
            return listed
        finally:
            await nc.close()

    return asyncio.run(names())


def test_a_body_larger_than_a_bus_message_is_answered_and_metered(stack):
    words = 300_000  # ~1.8 MB of text: more than NATS's 1 MB message limit
    text = " ".join(f"w{i % 1000}" for i in range(words))
    resp = post(stack, MASTER_KEY, {"model": "gpt-4", "messages": [{"role": "user", "content": text}], "max_tokens": 3}, 60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["prompt_tokens"] == words + 1  # the fake counts words + messages
    request_id = resp.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["prompt_tokens"]) == ("success", words + 1)
    assert "probe" in blob_names(stack, put="probe")
    eventually_sync(lambda: request_id not in blob_names(stack), "the worker to delete the body once acked", 10)
