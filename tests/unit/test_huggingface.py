"""HuggingFace Inference API converters: prompt template, parameters, usage, features, errors, stream."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from llmgw.config import Deployment, Secret
from tests.unit.openai_requests import chat_messages, chat_request
from workers.providers.errors import UpstreamError
from workers.providers.huggingface import (
    HuggingFaceStreamTranslator,
    _Details,
    _event_decoder,
    _generated_decoder,
    chat_request_to_text_generation,
    estimated_usage,
    features_to_embeddings,
    huggingface_error_to_upstream_error,
    render_prompt,
    text_generation_to_chat_completion,
    text_generation_usage,
)
from workers.usage import Usage

pytestmark = pytest.mark.unit

KEY = "hf_live_secret_42"
DEPLOYMENT = Deployment(
    id="hf/0", model_name="hf", provider="huggingface_inference", upstream_model="gpt2", api_base="http://x", api_key=Secret(KEY)
)
ESTIMATED = "estimated" in Usage.__struct_fields__  # whether Usage can say it was estimated yet


def decode(raw: bytes) -> dict:
    return msgspec.json.decode(raw)


def test_prompt_template_puts_policy_prompts_first_and_ends_with_the_assistant_cue():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "tool", "tool_call_id": "c", "content": "42"},
        {"role": "user", "content": "Bye"},
    ]
    assert render_prompt(chat_messages(messages), ["Policy."]) == (
        "System: Policy.\nSystem: Be brief.\nUser: Hi\nthere\nAssistant: Hello.\nTool: 42\nUser: Bye\nAssistant:"
    )
    with pytest.raises(UpstreamError) as err:
        render_prompt(chat_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]), [])
    assert err.value.status == 400


def test_parameters_keep_only_what_text_generation_accepts():
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 5,
        "temperature": 0,
        "top_p": 1,
        "stop": "User:",
        "seed": 3,
    }
    out, prompt = chat_request_to_text_generation(chat_request(body), [], stream=False)
    assert out == {
        "inputs": "User: Hi\nAssistant:",
        "parameters": {
            "return_full_text": False,
            "details": True,
            "decoder_input_details": True,
            "max_new_tokens": 5,
            "seed": 3,
            "stop": ["User:"],
        },
        "stream": False,
    }
    assert prompt == out["inputs"]
    out, _ = chat_request_to_text_generation(chat_request({**body, "temperature": 0.7, "top_p": 0.9}), [], stream=True)
    assert out["stream"] is True and "decoder_input_details" not in out["parameters"]
    assert (out["parameters"]["temperature"], out["parameters"]["top_p"]) == (0.7, 0.9)


@pytest.mark.parametrize("extra", [{"tools": [{"type": "function", "function": {"name": "f"}}]}, {"n": 2}])
def test_tools_and_several_choices_are_refused(extra):
    with pytest.raises(UpstreamError) as err:
        chat_request_to_text_generation(chat_request({"messages": [{"role": "user", "content": "x"}], **extra}), [], False)
    assert err.value.status == 400


def test_usage_is_counted_when_the_server_says_and_estimated_otherwise():
    prefill = msgspec.json.decode(b'{"generated_tokens":3,"prefill":[{"id":1},{"id":2},{"id":3},{"id":4}]}', type=_Details)
    assert text_generation_usage(prefill, "ignored", "ignored") == Usage(4, 3)
    streamed = _Details(generated_tokens=2, input_length=9)
    assert text_generation_usage(streamed, "p", "t") == Usage(9, 2)
    guessed = text_generation_usage(_Details(generated_tokens=5, prefill=[]), "x" * 40, "")
    assert (guessed.prompt_tokens, guessed.completion_tokens) == (10, 5)
    nothing = text_generation_usage(None, "x" * 8, "y" * 12)
    assert (nothing.prompt_tokens, nothing.completion_tokens) == (2, 3)
    if ESTIMATED:
        assert guessed.estimated and nothing.estimated and not text_generation_usage(streamed, "p", "t").estimated
    assert estimated_usage(1, 2) == Usage(1, 2, **({"estimated": True} if ESTIMATED else {}))


def test_whole_answers_as_a_list_or_an_object_become_chat_completions():
    raw = b'[{"generated_text":"w0 w1","details":{"finish_reason":"length","generated_tokens":2,"prefill":[]}}]'
    answers = _generated_decoder.decode(raw)
    out = decode(text_generation_to_chat_completion(answers[0], "gpt2", Usage(6, 2)))
    assert out["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "w0 w1"}, "finish_reason": "length"}
    assert out["usage"] == {"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8} and out["model"] == "gpt2"
    single = _generated_decoder.decode(b'{"generated_text":"ok","details":{"finish_reason":"eos_token","generated_tokens":2}}')
    assert decode(text_generation_to_chat_completion(single, "m", Usage()))["choices"][0]["finish_reason"] == "stop"


def test_features_become_embeddings_pooled_or_mean_pooled():
    body, usage = features_to_embeddings([[1.0, 2.0], [3, 4]], ["abcd", "efgh"], "mini")
    out = decode(body)
    assert [d["embedding"] for d in out["data"]] == [[1.0, 2.0], [3.0, 4.0]] and usage.prompt_tokens == 2
    assert out["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    unpooled, _ = features_to_embeddings([[[1.0, 0.0], [3.0, 2.0]]], ["two words"], "m")
    assert decode(unpooled)["data"][0]["embedding"] == [2.0, 1.0]
    batched, _ = features_to_embeddings([[[[1.0, 1.0], [3.0, 3.0]]]], ["x"], "m")
    assert decode(batched)["data"][0]["embedding"] == [2.0, 2.0]
    bare, _ = features_to_embeddings([0.5, 0.25], ["one"], "m")
    assert decode(bare)["data"][0]["embedding"] == [0.5, 0.25]
    with pytest.raises(UpstreamError) as err:
        features_to_embeddings([[1.0]], ["a", "b"], "m")
    assert err.value.status == 502


def test_a_loading_model_is_503_with_retry_after():
    err = huggingface_error_to_upstream_error(
        503, b'{"error":"Model gpt2 is currently loading","estimated_time":20.5}', httpx.Headers(), DEPLOYMENT
    )
    assert (err.status, err.retry_after, err.code) == (503, 20.5, "service_unavailable")


@pytest.mark.parametrize(
    ("status", "client_status"), [(400, 400), (404, 404), (422, 422), (429, 429), (401, 502), (403, 502), (500, 502), (503, 502)]
)
def test_upstream_errors_map_to_client_statuses(status, client_status):
    body = f'{{"error":["bad token {KEY}","second"],"error_type":"validation"}}'.encode()
    err = huggingface_error_to_upstream_error(status, body, httpx.Headers({"retry-after": "4"}), DEPLOYMENT)
    assert err.status == client_status and KEY not in err.message
    if status == 400:
        assert err.message == "bad token ***; second"
    if status == 429:
        assert err.retry_after == 4.0


def test_a_prompt_over_the_model_limit_is_flagged_for_fallbacks():
    body = b'{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048. Given: 2000 `inputs` tokens and 100 `max_new_tokens`","error_type":"validation"}'
    assert huggingface_error_to_upstream_error(422, body, httpx.Headers(), DEPLOYMENT).code == "context_length_exceeded"


STREAM = [
    b'{"index":1,"token":{"id":1,"text":"w0","logprob":-0.1,"special":false},"generated_text":null,"details":null}',
    b'{"index":2,"token":{"id":2,"text":" w1","logprob":-0.1,"special":false},"generated_text":null,"details":null}',
    b'{"index":3,"token":{"id":3,"text":"</s>","logprob":-0.1,"special":true},"generated_text":"w0 w1",'
    b'"details":{"finish_reason":"eos_token","generated_tokens":3,"seed":null,"input_length":7}}',
]


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_tokens_become_chunks_without_special_tokens(include_usage):
    translator = HuggingFaceStreamTranslator(DEPLOYMENT, "gpt2", "User: hi\nAssistant:", include_usage)
    items = [i for raw in STREAM for i in translator.feed(_event_decoder.decode(raw))]
    chunks = [decode(i) for i in items if isinstance(i, bytes)]
    assert translator.finished
    assert [c["choices"][0]["delta"] for c in chunks[:4]] == [
        {"role": "assistant", "content": ""},
        {"content": "w0"},
        {"content": " w1"},
        {},
    ]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert [i for i in items if isinstance(i, Usage)] == [Usage(7, 3)]
    assert (chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 10) if include_usage else len(chunks) == 4


def test_an_error_event_fails_the_stream_without_the_key():
    translator = HuggingFaceStreamTranslator(DEPLOYMENT, "m", "p", False)
    with pytest.raises(UpstreamError) as err:
        translator.feed(_event_decoder.decode(f'{{"error":"CUDA out of memory {KEY}","error_type":"generation"}}'.encode()))
    assert err.value.status == 502 and KEY not in err.value.message
