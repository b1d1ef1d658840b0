"""The Vectara adapter against the fake Vectara v2 query API (bench/fake_vectara.py), over the
worker's real upstream client."""

from __future__ import annotations

import msgspec
import pytest

from bench.fake_vectara import start_fake
from llmgw.config import Deployment, Secret
from llmgw.contracts import Operation, UpstreamRequest
from tests.integration.adapter_support import collect, upstream_request
from tests.procs import free_port
from workers.http_client import UpstreamClient
from workers.providers.errors import UpstreamError
from workers.providers.vectara import Vectara
from workers.usage import Usage

pytestmark = pytest.mark.integration

KEY = "zqt_integration_secret_31337"
CONVERSATION = [
    {"role": "system", "content": "You answer from the handbook."},
    {"role": "user", "content": "What is the leave policy?"},
    {"role": "assistant", "content": "Which country?"},
    {"role": "user", "content": "France, 2024"},  # 12 characters: 3 estimated tokens
]
ESTIMATED = "estimated" in Usage.__struct_fields__  # whether Usage can say it was estimated yet


@pytest.fixture(scope="module")
async def fake():
    handle, _ = await start_fake(api_key=KEY)
    yield handle
    await handle.stop()


@pytest.fixture(scope="module")
async def provider():
    client = UpstreamClient(16)
    yield Vectara(client, 30.0, 5.0)
    await client.aclose()


def deployment(fake, key: str = KEY, base: str | None = None, corpus: str | None = "handbook") -> Deployment:
    return Deployment(
        id="docs/0",
        model_name="docs",
        provider="vectara",
        upstream_model="docs-model",
        api_base=base or fake.base_url,
        api_key=Secret(key),
        extra=(("vectara_corpus_key", Secret(corpus)),) if corpus else (),
    )


def request(body: dict, *, stream: bool = False, include_usage: bool = False, operation=Operation.CHAT) -> UpstreamRequest:
    return upstream_request(
        body, "docs", "docs/0", stream=stream, include_usage=include_usage, operation=operation, system_prompts=["Policy prompt."]
    )


async def stream(provider, dep: Deployment, body: dict, model: str = "docs-model", **kwargs) -> tuple[list[dict], list[Usage]]:
    return await collect(provider.chat_stream(dep, request(body, stream=True, **kwargs), model))


async def test_chat_asks_the_last_user_message_of_the_configured_corpus(provider, fake):
    completion = await provider.chat(
        deployment(fake), request({"model": "docs", "messages": CONVERSATION, "max_tokens": 4}), "docs-model"
    )
    assert fake.stats.by_model.get("handbook")
    sent = fake.app.last_request
    assert sent == {
        "query": "France, 2024",
        "search": {"limit": 10},
        "stream_response": False,
        "generation": {"max_used_search_results": 5, "model_parameters": {"max_tokens": 4}},
    }
    out = msgspec.json.decode(completion.body)
    assert out["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "w0 w1 w2 w3"}, "finish_reason": "stop"}
    # estimated: 12 characters of query, 11 of summary
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 3)
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    if ESTIMATED:
        assert completion.usage.estimated


async def test_without_the_option_the_model_name_is_the_corpus(provider, fake):
    await provider.chat(deployment(fake, corpus=None), request({"model": "docs", "messages": CONVERSATION}), "docs-model")
    assert fake.stats.by_model.get("docs-model") == 1


async def test_stream_relays_the_summary_then_usage(provider, fake):
    chunks, usages = await stream(
        provider, deployment(fake), {"model": "docs", "messages": CONVERSATION, "max_tokens": 3}, include_usage=True
    )
    assert fake.app.last_request["stream_response"] is True
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:4]] == ["w0", " w1", " w2"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert [(u.prompt_tokens, u.completion_tokens) for u in usages] == [(3, 2)]  # "w0 w1 w2" is 8 characters


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("corpus", "status", "code", "message"),
    [
        ("fake-error-429", 429, "rate_limit_exceeded", "Too many requests, slow down."),
        ("fake-error-500", 502, "upstream_error", None),
        ("fake-error-400", 400, None, "Bad request; query: fake bad request"),
        ("fake-error-404", 404, None, None),
    ],
)
async def test_upstream_errors(provider, fake, corpus, status, code, message, streaming):
    dep = deployment(fake, corpus=corpus)
    with pytest.raises(UpstreamError) as err:
        if streaming:
            await stream(provider, dep, {"model": "docs", "messages": CONVERSATION})
        else:
            await provider.chat(dep, request({"model": "docs", "messages": CONVERSATION}), "docs-model")
    assert err.value.status == status and err.value.code == code
    if message:
        assert err.value.message == message
    if status == 429:
        assert err.value.retry_after == 1.0


async def test_wrong_key_is_a_gateway_problem_and_never_echoed(provider, fake):
    wrong = "zqt_wrong_key_000"
    with pytest.raises(UpstreamError) as err:
        await provider.chat(deployment(fake, key=wrong), request({"model": "docs", "messages": CONVERSATION}), "docs-model")
    assert err.value.status == 502 and wrong not in err.value.message and KEY not in err.value.message


@pytest.mark.parametrize(("corpus", "relayed"), [("fake-stream-fail", 4), ("fake-stream-error", 3)])
async def test_a_stream_cut_off_or_ended_by_an_error_event_is_a_502(provider, fake, corpus, relayed):
    chunks = []
    with pytest.raises(UpstreamError) as err:
        async for item in provider.chat_stream(
            deployment(fake, corpus=corpus), request({"model": "docs", "messages": CONVERSATION}, stream=True), "m"
        ):
            chunks.append(item)
    assert err.value.status == 502 and len(chunks) == relayed  # the role chunk and what was generated before it broke


async def test_unreachable_upstream_and_no_embeddings(provider, fake):
    with pytest.raises(UpstreamError) as err:
        await provider.chat(
            deployment(fake, base=f"http://127.0.0.1:{free_port()}"), request({"model": "docs", "messages": CONVERSATION}), "m"
        )
    assert err.value.status == 502 and err.value.code == "upstream_unreachable"
    with pytest.raises(UpstreamError) as err:
        await provider.embeddings(deployment(fake), request({"model": "docs", "input": "x"}, operation=Operation.EMBEDDINGS), "m")
    assert err.value.status == 400
