"""Stored chat completions served by a translated provider (Anthropic, against
bench/fake_anthropic.py): the worker's own chunks, put back together, are the stored completion,
whole and streamed, with the usage the client was metered for."""

from __future__ import annotations

import openai
import pytest

from tests.e2e.responses_stack import ANTHROPIC_KEY, new_key, start_stack
from tests.e2e.stack import Stack
from tests.procs import FakeUpstream

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hello there friend"}]


@pytest.fixture(scope="module")
def fake_anthropic(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("anthropic"), ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, fake_anthropic, tmp_path_factory: pytest.TempPathFactory):
    s = start_stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2estoredchatprov", upstream, fake_anthropic)
    yield s
    s.stop()


def test_an_anthropic_completion_is_stored_whole_and_streamed(stack: Stack) -> None:
    sdk = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=new_key(stack, user_id="claude-user"), max_retries=0)
    whole = sdk.chat.completions.create(model="claude", messages=HELLO, store=True, max_tokens=6)
    raw = sdk.chat.completions.with_raw_response.create(model="claude", messages=HELLO, store=True, stream=True, max_tokens=6)
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and not any(c.usage for c in chunks)  # the client asked for no usage
    kept_whole, kept_stream = (sdk.chat.completions.retrieve(i) for i in (whole.id, chunks[0].id))
    assert kept_whole.choices[0].message.content == whole.choices[0].message.content and kept_whole.usage == whole.usage
    assert kept_stream.choices[0].message.content == text
    assert kept_stream.choices[0].finish_reason == chunks[-1].choices[0].finish_reason
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert kept_stream.usage is not None
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        kept_stream.usage.prompt_tokens,
        kept_stream.usage.completion_tokens,
    )
    assert [c.id for c in sdk.chat.completions.list().data] == [whole.id, chunks[0].id]
