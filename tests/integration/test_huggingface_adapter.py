"""The HuggingFace Inference API adapter against the fake task routes (bench/fake_huggingface.py),
over the worker's real upstream client."""

from __future__ import annotations

import msgspec
import pytest

from bench.fake_huggingface import start_fake
from llmgw.config import Deployment, Secret
from llmgw.contracts import Operation, UpstreamRequest
from tests.integration.adapter_support import collect, upstream_request
from tests.procs import free_port
from workers.http_client import UpstreamClient
from workers.providers.errors import UpstreamError
from workers.providers.huggingface import HuggingFaceInference
from workers.usage import Usage

pytestmark = pytest.mark.integration

KEY = "hf_integration_secret_31337"
HELLO = [{"role": "user", "content": "Hello there friend"}]  # "User: Hello there friend\nAssistant:" is 5 words
ESTIMATED = "estimated" in Usage.__struct_fields__  # whether Usage can say it was estimated yet


@pytest.fixture(scope="module")
async def fake():
    handle, _ = await start_fake(api_key=KEY)
    yield handle
    await handle.stop()


@pytest.fixture(scope="module")
async def provider():
    client = UpstreamClient(16)
    yield HuggingFaceInference(client, 30.0, 5.0)
    await client.aclose()


def deployment(fake, key: str = KEY, base: str | None = None) -> Deployment:
    return Deployment(
        id="hf/0",
        model_name="hf",
        provider="huggingface_inference",
        upstream_model="gpt2",
        api_base=base or fake.base_url,
        api_key=Secret(key),
    )


def request(
    body: dict, *, stream: bool = False, include_usage: bool = False, system_prompts=(), operation=Operation.CHAT
) -> UpstreamRequest:
    return upstream_request(
        body, "hf", "hf/0", stream=stream, include_usage=include_usage, system_prompts=system_prompts, operation=operation
    )


async def chat(provider, fake, body: dict, model: str = "gpt2", **kwargs):
    completion = await provider.chat(deployment(fake), request(body, **kwargs), model)
    return msgspec.json.decode(completion.body), completion.usage


async def stream(provider, fake, body: dict, model: str = "gpt2", **kwargs) -> tuple[list[dict], list[Usage]]:
    return await collect(provider.chat_stream(deployment(fake), request(body, stream=True, **kwargs), model))


async def test_chat_counts_the_prompt_from_prefill_and_the_answer_from_details(provider, fake):
    out, usage = await chat(provider, fake, {"model": "hf", "messages": HELLO, "max_tokens": 3, "temperature": 0, "top_p": 1.0})
    sent = fake.app.last_request
    assert sent["inputs"] == "User: Hello there friend\nAssistant:" and sent["stream"] is False
    assert sent["parameters"] == {"return_full_text": False, "details": True, "decoder_input_details": True, "max_new_tokens": 3}
    assert (
        out["choices"][0]["message"] == {"role": "assistant", "content": "w0 w1 w2"}
        and out["choices"][0]["finish_reason"] == "length"
    )
    assert usage == Usage(5, 3) and out["usage"]["total_tokens"] == 8 and out["model"] == "gpt2"


async def test_an_answer_ended_by_eos_counts_the_special_token_but_does_not_show_it(provider, fake):
    out, usage = await chat(provider, fake, {"model": "hf", "messages": HELLO}, system_prompts=["Be kind."])
    assert fake.app.last_request["inputs"] == "System: Be kind.\nUser: Hello there friend\nAssistant:"
    assert out["choices"][0]["message"]["content"] == "w0 w1 w2 w3 w4 w5 w6 w7" and out["choices"][0]["finish_reason"] == "stop"
    assert usage == Usage(8, 9)


async def test_stream_relays_tokens_in_order_then_exact_usage(provider, fake):
    chunks, usages = await stream(
        provider, fake, {"model": "hf", "messages": HELLO, "max_tokens": 3, "temperature": 0.5}, include_usage=True
    )
    assert "decoder_input_details" not in fake.app.last_request["parameters"] and fake.app.last_request["stream"] is True
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:4]] == ["w0", " w1", " w2"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert usages == [Usage(5, 3)]  # input_length from the stream's details: counted, not estimated
    plain, usages = await stream(provider, fake, {"model": "hf", "messages": HELLO})
    assert "</s>" not in "".join(c["choices"][0]["delta"].get("content") or "" for c in plain) and all(
        c["choices"] for c in plain
    )
    assert plain[-1]["choices"][0]["finish_reason"] == "stop" and usages == [Usage(5, 9)]


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("model", "status", "code", "retry_after"),
    [
        ("fake-error-429", 429, "rate_limit_exceeded", 1.0),
        ("fake-error-500", 502, "upstream_error", None),
        ("fake-error-400", 400, None, None),
        ("fake-loading", 503, "service_unavailable", 20.0),
    ],
)
async def test_upstream_errors(provider, fake, model, status, code, retry_after, streaming):
    with pytest.raises(UpstreamError) as err:
        if streaming:
            await stream(provider, fake, {"model": "hf", "messages": HELLO}, model=model)
        else:
            await chat(provider, fake, {"model": "hf", "messages": HELLO}, model=model)
    assert (err.value.status, err.value.code, err.value.retry_after) == (status, code, retry_after)
    if status == 400:
        assert err.value.message == "Input validation error: fake bad request"


async def test_tools_are_refused_before_calling_the_upstream(provider, fake):
    before = fake.stats.requests
    with pytest.raises(UpstreamError) as err:
        await chat(provider, fake, {"model": "hf", "messages": HELLO, "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert err.value.status == 400 and fake.stats.requests == before


async def test_wrong_key_is_a_gateway_problem_and_never_echoed(provider, fake):
    wrong = "hf_wrong_key_000"
    with pytest.raises(UpstreamError) as err:
        await provider.chat(deployment(fake, key=wrong), request({"model": "hf", "messages": HELLO}), "gpt2")
    assert err.value.status == 502 and wrong not in err.value.message and KEY not in err.value.message


async def test_stream_cut_off_is_a_502(provider, fake):
    chunks = []
    with pytest.raises(UpstreamError) as err:
        async for item in provider.chat_stream(
            deployment(fake), request({"model": "hf", "messages": HELLO}, stream=True), "fake-stream-fail"
        ):
            chunks.append(item)
    assert err.value.status == 502 and len(chunks) == 4  # the role chunk and three tokens reached the client


async def test_unreachable_upstream(provider, fake):
    with pytest.raises(UpstreamError) as err:
        await provider.chat(
            deployment(fake, base=f"http://127.0.0.1:{free_port()}"), request({"model": "hf", "messages": HELLO}), "gpt2"
        )
    assert err.value.status == 502 and err.value.code == "upstream_unreachable"


@pytest.mark.parametrize("model", ["sentence-transformers/all-MiniLM-L6-v2", "fake-unpooled"])
async def test_feature_extraction_embeddings_with_estimated_usage(provider, fake, model):
    body = {"model": "emb", "input": ["one two three", "four"]}
    completion = await provider.embeddings(deployment(fake), request(body, operation=Operation.EMBEDDINGS), model)
    assert fake.app.last_request == {"inputs": ["one two three", "four"]}
    out = msgspec.json.decode(completion.body)
    assert [d["index"] for d in out["data"]] == [0, 1] and all(len(d["embedding"]) == 8 for d in out["data"])
    # feature extraction reports no tokens: 13 and 4 characters, estimated at 4 a token
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4 + 1, 0)
    assert out["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    if ESTIMATED:
        assert completion.usage.estimated
