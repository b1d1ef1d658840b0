"""Converters of the Gemini / Vertex AI adapters: requests, answers, stream events, usage,
errors, service-account assertions, native usage and paths."""

from __future__ import annotations

import base64
import json
import struct
import time

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from llmgw.config import Deployment, Secret
from workers.http_client import UpstreamClient
from workers.providers.base import UpstreamError
from workers.providers.gemini import Gemini, VertexAI
from workers.providers.gemini.errors import google_error_to_upstream_error, retry_delay_seconds
from workers.providers.gemini.native import GoogleNativeUsage, with_model, with_vertex_scope
from workers.providers.gemini.oauth import GRANT_TYPE, SCOPE, TokenSource, load_service_account
from workers.providers.gemini.request import (
    chat_request_to_gemini,
    embedding_inputs,
    embeddings_to_gemini_batch,
    embeddings_to_vertex_predict,
)
from workers.providers.gemini.response import (
    StreamConverter,
    embeddings_list,
    finish_reason_to_openai,
    gemini_response_to_chat,
    gemini_usage_to_usage,
)
from workers.providers.gemini.wire import UsageMetadata, response_decoder
from workers.usage import Usage

pytestmark = pytest.mark.unit

KEY = "AIzaSy-gemini-secret-777"
GEMINI = Deployment(
    id="gem/0",
    model_name="gem",
    provider="gemini",
    upstream_model="gemini-1.5-pro",
    api_base="https://generativelanguage.googleapis.com",
    api_key=Secret(KEY),
)


def convert(body: dict, system_prompts: list[str] | None = None) -> dict:
    return chat_request_to_gemini(json.dumps(body).encode(), system_prompts or [])


def decode_response(doc: dict):
    return response_decoder.decode(json.dumps(doc).encode())


# ---- requests ---------------------------------------------------------------------------


def test_system_prompts_go_to_system_instruction_policy_first_and_roles_map():
    out = convert(
        {
            "messages": [
                {"role": "system", "content": "client system"},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi"},
                {"role": "developer", "content": [{"type": "text", "text": "dev note"}]},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ]
        },
        ["policy one", "policy two"],
    )
    assert out["systemInstruction"] == {
        "parts": [{"text": "policy one"}, {"text": "policy two"}, {"text": "client system"}, {"text": "dev note"}]
    }
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "hello"}]},
        {"role": "model", "parts": [{"text": "hi"}]},
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
    ]
    assert "generationConfig" not in out and "tools" not in out


def test_images_go_inline_or_by_reference():
    out = convert(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is it"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?x=1"}},
                    ],
                }
            ]
        }
    )
    assert out["contents"][0]["parts"] == [
        {"text": "what is it"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?x=1"}},
    ]


def test_tools_tool_choice_and_a_tool_call_round_trip():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {
                        "location": {"type": "string"},
                        "unit": {"type": "object", "additionalProperties": False},
                    },
                    "required": ["location"],
                    "additionalProperties": False,
                },
            },
        }
    ]
    out = convert(
        {
            "messages": [
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                        },
                        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
                {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
            ],
            "tools": tools,
            "tool_choice": "required",
        }
    )
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather of a city",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}, "unit": {"type": "object"}},
                        "required": ["location"],
                    },
                }
            ]
        }
    ]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    model_turn, results = out["contents"][1], out["contents"][2]
    assert model_turn == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    # Both results in one user turn, named after the calls they answer.
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}},
        ],
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ],
)
def test_tool_choice_modes(choice, config):
    tools = [{"type": "function", "function": {"name": "f"}}]
    out = convert({"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice})
    assert out["toolConfig"] == {"functionCallingConfig": config}


def test_generation_config():
    out = convert(
        {
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "n": 2,
            "seed": 7,
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
        }
    )
    assert out["generationConfig"] == {
        "maxOutputTokens": 10,  # the lower of the two limits
        "temperature": 0.5,
        "topP": 0.9,
        "candidateCount": 2,
        "seed": 7,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert convert({"messages": [{"role": "user", "content": "x"}], "max_tokens": 4, "stop": ["a", "b"]})[
        "generationConfig"
    ] == {
        "maxOutputTokens": 4,
        "stopSequences": ["a", "b"],
    }


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "tool", "tool_call_id": "nope", "content": "x"}],
        [{"role": "user", "content": [{"type": "video", "video": {}}]}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}]}],
    ],
)
def test_requests_gemini_cannot_take_are_400(messages):
    with pytest.raises(UpstreamError) as info:
        convert({"messages": messages})
    assert info.value.status == 400 and info.value.type == "invalid_request_error"


def test_embedding_requests():
    texts, dims, b64 = embedding_inputs(b'{"model":"e","input":["a b","c"],"dimensions":4,"encoding_format":"base64"}')
    assert (texts, dims, b64) == (["a b", "c"], 4, True)
    assert embeddings_to_gemini_batch(texts, "text-embedding-004", dims) == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 4},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "c"}]}, "outputDimensionality": 4},
        ]
    }
    assert embeddings_to_vertex_predict(["x"], None) == {"instances": [{"content": "x"}]}
    assert embedding_inputs(b'{"model":"e","input":"one"}') == (["one"], None, False)
    with pytest.raises(UpstreamError) as info:
        embedding_inputs(b'{"model":"e","input":[[1,2,3]]}')
    assert info.value.status == 400


# ---- answers ----------------------------------------------------------------------------


def test_usage_counts_thoughts_as_output_and_reads_cache():
    meta = UsageMetadata(
        promptTokenCount=100,
        candidatesTokenCount=20,
        cachedContentTokenCount=60,
        thoughtsTokenCount=7,
        toolUsePromptTokenCount=3,
    )
    assert gemini_usage_to_usage(meta) == Usage(
        prompt_tokens=103, completion_tokens=27, cached_tokens=60, reasoning_tokens=7
    )


@pytest.mark.parametrize(
    ("reason", "called", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("SOMETHING_NEW", False, "stop"),
        (None, False, None),
    ],
)
def test_finish_reasons(reason, called, expected):
    assert finish_reason_to_openai(reason, called) == expected


def test_whole_answer_with_text_thoughts_and_function_calls():
    resp = decode_response(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "thinking...", "thought": True},
                            {"text": "Let me "},
                            {"text": "check."},
                            {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13},
            "modelVersion": "gemini-1.5-pro-002",
            "responseId": "abc",
        }
    )
    body, usage = gemini_response_to_chat(resp, "gemini-1.5-pro")
    assert body["id"] == "chatcmpl-abc" and body["object"] == "chat.completion" and body["model"] == "gemini-1.5-pro-002"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Let me check." and message["reasoning_content"] == "thinking..."
    (call,) = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"location": "Paris"}
    assert usage == Usage(9, 4)
    assert body["usage"]["total_tokens"] == 13


def test_blocked_prompt_is_a_content_filter_finish():
    resp = decode_response({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}})
    body, usage = gemini_response_to_chat(resp, "m")
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": None}, "logprobs": None, "finish_reason": "content_filter"}
    ]
    assert usage == Usage(5, 0)


def _chunks(converter: StreamConverter, events: list[dict]) -> list[dict]:
    out = []
    for event in events:
        out += [json.loads(c) for c in converter.event(decode_response(event))]
    return out


def test_stream_events_become_openai_chunks():
    converter = StreamConverter("gemini-1.5-flash")
    chunks = _chunks(
        converter,
        [
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": "hmm", "thought": True}, {"text": "Hel"}]}, "index": 0}
                ]
            },
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}, "index": 0}]},
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]}, "index": 0}]},
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS", "index": 0}
                ],
                "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 3, "thoughtsTokenCount": 2},
            },
        ],
    )
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": "Hel", "reasoning_content": "hmm"},
        {"content": "lo"},
        {"content": "!"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "length"]
    assert {c["id"] for c in chunks} == {converter.id} and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert converter.finished and converter.usage == Usage(3, 5, reasoning_tokens=2)
    final = json.loads(converter.usage_chunk(converter.usage))
    assert final["choices"] == [] and final["usage"]["total_tokens"] == 8


def test_stream_function_calls_are_indexed_tool_call_deltas():
    converter = StreamConverter("m")
    call = {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}
    chunks = _chunks(
        converter,
        [{"candidates": [{"content": {"role": "model", "parts": [call, call]}, "finishReason": "STOP", "index": 0}]}],
    )
    delta = chunks[0]["choices"][0]["delta"]
    assert delta["role"] == "assistant"
    assert [t["index"] for t in delta["tool_calls"]] == [0, 1]
    assert delta["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"location":"Paris"}'}
    assert delta["tool_calls"][0]["id"] != delta["tool_calls"][1]["id"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_stream_without_finish_reason_is_not_finished():
    converter = StreamConverter("m")
    _chunks(converter, [{"candidates": [{"content": {"parts": [{"text": "a"}]}, "index": 0}]}])
    assert not converter.finished and converter.usage is None
    blocked = StreamConverter("m")
    chunks = _chunks(blocked, [{"promptFeedback": {"blockReason": "OTHER"}}])
    assert blocked.finished and chunks[-1]["choices"][0]["finish_reason"] == "content_filter"


def test_embeddings_list_base64_is_little_endian_float32():
    body = embeddings_list([[0.5, -1.0], [0.25, 2.0]], "text-embedding-004", True, 7)
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7} and body["object"] == "list"
    raw = base64.b64decode(body["data"][1]["embedding"])
    assert struct.unpack("<2f", raw) == (0.25, 2.0) and body["data"][1]["index"] == 1
    assert embeddings_list([[0.5]], "m", False, None)["data"][0]["embedding"] == [0.5]


# ---- errors -----------------------------------------------------------------------------


def _google_error(code: int, status: str, message: str, details: list | None = None) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": status, "details": details or []}}).encode()


@pytest.mark.parametrize(
    ("status", "google_status", "client_status"),
    [
        (400, "INVALID_ARGUMENT", 400),
        (404, "NOT_FOUND", 404),
        (429, "RESOURCE_EXHAUSTED", 429),
        (401, "UNAUTHENTICATED", 502),
        (403, "PERMISSION_DENIED", 502),
        (500, "INTERNAL", 502),
        (504, "DEADLINE_EXCEEDED", 502),
        (503, "UNAVAILABLE", 503),
    ],
)
def test_google_errors_map_to_client_statuses(status, google_status, client_status):
    body = _google_error(
        status,
        google_status,
        f"failed for key {KEY}",
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"}],
    )
    err = google_error_to_upstream_error(status, body, httpx.Headers(), GEMINI)
    assert err.status == client_status
    assert KEY not in err.message
    if status == 400:
        assert err.message == "failed for key ***" and err.code == "invalid_argument" and err.type == "invalid_request_error"
    if status == 429:
        assert err.retry_after == 27.0 and err.code == "rate_limit_exceeded"
    if status == 503:
        assert err.code == "service_unavailable"


def test_an_invalid_api_key_is_a_gateway_problem_even_as_a_400():
    body = _google_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    )
    err = google_error_to_upstream_error(400, body, httpx.Headers(), GEMINI)
    assert err.status == 502 and err.code == "upstream_error" and "gem/0" in err.message


def test_error_arrays_headers_and_non_json_bodies():
    array = b"[" + _google_error(429, "RESOURCE_EXHAUSTED", "slow down") + b"]"
    err = google_error_to_upstream_error(429, array, httpx.Headers({"retry-after": "3"}), GEMINI)
    assert err.message == "slow down" and err.retry_after == 3.0
    html = google_error_to_upstream_error(502, b"<html>Bad Gateway</html>", httpx.Headers(), GEMINI)
    assert html.status == 502 and "Bad Gateway" in html.message
    token = google_error_to_upstream_error(
        400, _google_error(400, "X", "token ya29.abc leaked"), httpx.Headers(), GEMINI, ["ya29.abc"]
    )
    assert "ya29.abc" not in token.message
    assert retry_delay_seconds("1.5s") == 1.5 and retry_delay_seconds("soon") is None and retry_delay_seconds(None) is None


# ---- service accounts -------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _account_json(key: rsa.RSAPrivateKey, **extra) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "proj-1",
            "private_key_id": "kid-1",
            "private_key": pem,
            "client_email": "gw@proj-1.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.example/token",
            **extra,
        }
    )


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_assertion_is_an_rs256_jwt_for_the_token_uri(private_key, tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(_account_json(private_key))
    account = load_service_account(str(path))
    assert account.project_id == "proj-1" and load_service_account(path.read_text()).client_email == account.client_email
    now = time.time()
    head, body, signature = account.assertion(now).split(".")
    assert json.loads(_b64(head)) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    claims = json.loads(_b64(body))
    assert claims == {
        "iss": "gw@proj-1.iam.gserviceaccount.com",
        "scope": SCOPE,
        "aud": "https://oauth2.example/token",
        "iat": int(now),
        "exp": int(now) + 3600,
    }
    # Verifies with the public key (raises InvalidSignature otherwise).
    private_key.public_key().verify(_b64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    assert GRANT_TYPE == "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.mark.parametrize("value", ["/nonexistent/sa.json", '{"type": "service_account"}', '{"not json'])
def test_unusable_credentials_are_a_500_that_shows_no_secret(value):
    deployment = Deployment(
        id="vx/0",
        model_name="vx",
        provider="vertex_ai",
        upstream_model="gemini-1.5-pro",
        extra=(("vertex_credentials", Secret(value)),),
    )
    with pytest.raises(UpstreamError) as info:
        TokenSource(UpstreamClient(1)).account(deployment)
    assert info.value.status == 500 and "vx/0" in info.value.message
    assert value not in info.value.message


# ---- URLs and native passthrough ---------------------------------------------------------


def test_model_urls(private_key):
    client = UpstreamClient(1)
    gemini = Gemini(client, 30, 5)
    assert gemini.model_url(GEMINI, "gemini-1.5-pro", "generateContent") == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-1.5-pro:generateContent"
    )
    pinned = msgspec.structs.replace(GEMINI, api_base="http://proxy.local/v1")
    assert gemini.model_url(pinned, "m", "batchEmbedContents") == "http://proxy.local/v1/models/m:batchEmbedContents"
    assert gemini.native_root(pinned, "m") == "http://proxy.local"
    vertex = VertexAI(client, 30, 5)
    extra = (("vertex_credentials", Secret(_account_json(private_key))), ("vertex_location", "europe-west4"))
    regional = Deployment(id="v/0", model_name="v", provider="vertex_ai", upstream_model="gemini-1.5-pro", extra=extra)
    assert vertex.model_url(regional, "gemini-1.5-pro", "streamGenerateContent?alt=sse") == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj-1/locations/europe-west4"
        "/publishers/google/models/gemini-1.5-pro:streamGenerateContent?alt=sse"
    )
    world = msgspec.structs.replace(
        regional, extra=(("vertex_credentials", extra[0][1]), ("vertex_location", "global"), ("vertex_project", "p2"))
    )
    assert vertex.model_url(world, "m", "predict") == (
        "https://aiplatform.googleapis.com/v1/projects/p2/locations/global/publishers/google/models/m:predict"
    )
    faked = msgspec.structs.replace(regional, api_base="http://127.0.0.1:9")
    assert vertex.model_url(faked, "m", "generateContent").startswith(
        "http://127.0.0.1:9/v1/projects/proj-1/locations/europe-west4/"
    )
    assert vertex.native_root(faked, "m") == "http://127.0.0.1:9"
    assert vertex.native_path(
        faked, "/v1/projects/theirs/locations/us-east1/publishers/google/models/x:generateContent", "m"
    ) == ("/v1/projects/proj-1/locations/europe-west4/publishers/google/models/m:generateContent")


def test_native_paths_and_usage():
    assert with_model("/v1beta/models/my-group:streamGenerateContent", "gemini-2.0-flash") == (
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    )
    assert with_model("/v1beta/files", "m") == "/v1beta/files"
    assert with_vertex_scope("/v1/projects/a/locations/b/publishers/google/models/m:predict", "p", "l") == (
        "/v1/projects/p/locations/l/publishers/google/models/m:predict"
    )
    whole = GoogleNativeUsage()
    whole.body(b'{"candidates":[],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":6,"thoughtsTokenCount":1}}')
    assert whole.usage == Usage(4, 7, reasoning_tokens=1)
    array = GoogleNativeUsage()
    array.body(
        b'[{"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1}},\r\n{"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":9}}]'
    )
    assert array.usage == Usage(4, 9)
    events = GoogleNativeUsage()
    for data in (
        b'{"candidates":[]}',
        b"not json",
        b'{"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":3,"cachedContentTokenCount":1}}',
    ):
        events.event(data)
    assert events.usage == Usage(2, 3, cached_tokens=1)
    nothing = GoogleNativeUsage()
    nothing.body(b'{"embeddings":[]}')
    assert nothing.usage is None
