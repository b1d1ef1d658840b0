"""Answers larger than one NATS message (1 MB by default), through the real edge, worker and
metering with the official `openai` SDK: the worker sends them by the blobs object store, the edge
reads them back before answering and deletes them. Each comes back intact, with one usage row, and
no blob is left behind."""

from __future__ import annotations

import asyncio
import struct

import nats
import pytest

from bench.fake_openai_payloads import embedding_vector, reply_text
from llmgw.contracts import Subjects
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

NATS_MESSAGE = 1024 * 1024  # nats-server's default max_payload


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    groups = {"long": "fake-long", "embed": "text-embedding-3-small"}
    lines = ["model_list:"]
    for name, model in groups.items():
        lines += [
            f"  - model_name: {name}",
            "    params:",
            f"      model: openai/{model}",
            f"      api_base: {upstream.base_url}",
            "      api_key: os.environ/E2E_UPSTREAM_KEY",
        ]
    lines += ["general_settings:", "  master_key: os.environ/E2E_MASTER_KEY"]
    root = tmp_path_factory.mktemp("big-replies")
    s = Stack(root, nats_server.url, "e2ebigreplies", upstream, {}, config="\n".join(lines) + "\n").start()
    yield s
    s.stop()


def blobs_state(stack: Stack) -> tuple[list[str], int, int]:
    """(names in the blobs store, bytes it holds, messages ever written to it)."""

    async def state() -> tuple[list[str], int, int]:
        nc = await nats.connect(stack.nats_url)
        try:
            js = nc.jetstream()
            bucket = Subjects(stack.prefix).blobs_bucket
            store = await js.object_store(bucket)
            try:
                names = [info.name for info in await store.list(ignore_deletes=True)]
            except Exception:  # nats-py raises when the store is empty
                names = []
            info = await js.stream_info(f"OBJ_{bucket}")
            return names, info.state.bytes, info.state.last_seq
        finally:
            await nc.close()

    return asyncio.run(state())


def one_usage_row(stack: Stack, request_id: str) -> dict:
    row = stack.usage_rows([request_id])[request_id]
    count = stack.query("SELECT count() AS n FROM usage WHERE request_id = {id:String}", {"id": request_id})
    assert count[0]["n"] == 1, count
    return row


def test_a_whole_chat_answer_of_3_mb_comes_back_intact_and_metered_once(stack):
    words = 400_000  # "w0 w1 ... w399999": about 3 MB of content
    _, _, written_before = blobs_state(stack)
    raw = stack.client(timeout=60).chat.completions.with_raw_response.create(
        model="long", messages=[{"role": "user", "content": "a long answer please"}], max_tokens=words
    )
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]
    content = completion.choices[0].message.content
    assert content is not None and len(content) > 2.5 * NATS_MESSAGE
    assert content == reply_text(words)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == words
    row = one_usage_row(stack, request_id)
    assert (row["status"], row["http_status"], row["completion_tokens"]) == ("success", 200, words)
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    names, held, written = blobs_state(stack)
    assert written > written_before  # the answer went through the blobs store...
    assert not [n for n in names if n.startswith(request_id)] and held < 64 * 1024  # ...and is gone from it


def test_embeddings_of_2_mb_come_back_intact_and_metered_once(stack):
    inputs = [f"input number {i}" for i in range(256)]  # 256 vectors of 1536 floats: ~2.1 MB as base64
    _, _, written_before = blobs_state(stack)
    raw = stack.client(timeout=60).embeddings.with_raw_response.create(model="embed", input=inputs, dimensions=1536)
    assert int(raw.headers["content-length"]) > 2 * NATS_MESSAGE
    result = raw.parse()
    request_id = raw.headers["x-request-id"]
    assert [e.index for e in result.data] == list(range(len(inputs)))
    for text, item in zip(inputs, result.data, strict=True):  # (the SDK asks for base64: float32 values)
        expected = struct.unpack("<1536f", struct.pack("<1536f", *embedding_vector(text.encode(), 1536)))
        assert item.embedding == list(expected)
    assert result.usage.prompt_tokens == 3 * len(inputs)
    row = one_usage_row(stack, request_id)
    assert (row["status"], row["http_status"], row["prompt_tokens"]) == ("success", 200, 3 * len(inputs))
    names, held, written = blobs_state(stack)
    assert written > written_before
    assert not [n for n in names if n.startswith(request_id)] and held < 64 * 1024


def test_a_stream_chunk_of_1_5_mb_comes_back_intact_and_metered_once(stack):
    """One stream chunk larger than a message (as a huge tool call's arguments can be): the fake
    streams a fake-long answer as one content delta."""
    words = 200_000  # ~1.4 MB in one chunk
    _, _, written_before = blobs_state(stack)
    raw = stack.client(timeout=60).chat.completions.with_raw_response.create(
        model="long",
        messages=[{"role": "user", "content": "a long answer please"}],
        max_tokens=words,
        stream=True,
        stream_options={"include_usage": True},
    )
    request_id = raw.headers["x-request-id"]
    chunks = list(raw.parse())
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(contents) == 1 and contents[0] == reply_text(words)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == words
    row = one_usage_row(stack, request_id)
    assert (row["status"], row["http_status"], row["completion_tokens"]) == ("success", 200, words)
    names, held, written = blobs_state(stack)
    assert written > written_before
    assert not [n for n in names if n.startswith(request_id)] and held < 64 * 1024
