"""Gemini (API key) and Vertex AI (service account) end to end: the official `openai` SDK ->
gateway edge -> worker -> the fake Google upstream (bench/fake_gemini.py) as its own process,
with usage rows read back from metering."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "AIzaSy-e2e-gemini-key-31337"
HELLO = [{"role": "user", "content": "Hello there friend"}]  # the fake counts 3 words + 1 content
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    }
]


@pytest.fixture(scope="module")
def sa_files(tmp_path_factory):
    """A service account's key pair: (public key PEM path for the fake, private key PEM text)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = tmp_path_factory.mktemp("sa")
    public = root / "sa-public.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return root, public, private


@pytest.fixture(scope="module")
def fake(tmp_path_factory, sa_files):
    f = FakeUpstream(tmp_path_factory.mktemp("up"), UPSTREAM_KEY, module="bench.fake_gemini")
    f.proc.args += ["--vertex-public-key", str(sa_files[1])]
    f.start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def stack(nats_server, fake, sa_files, tmp_path_factory):
    root, _, private = sa_files
    credentials = root / "service-account.json"
    credentials.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "e2e-project",
                "private_key_id": "e2e-key-1",
                "private_key": private,
                "client_email": "llmgw-e2e@e2e-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{fake.root_url}/token",
            }
        )
    )

    def gemini(name: str, model: str) -> str:
        return (
            f"  - model_name: {name}\n    params:\n      model: gemini/{model}\n      api_base: {fake.root_url}\n"
            "      api_key: os.environ/E2E_UPSTREAM_KEY\n"
        )

    config = (
        "model_list:\n"
        + gemini("gemini-flash", "gemini-1.5-flash")
        + gemini("gemini-busy", "fake-error-429")
        + gemini("gemini-embed", "text-embedding-004")
        + "  - model_name: vertex-pro\n    params:\n      model: vertex_ai/gemini-1.5-pro\n"
        f"      vertex_project: e2e-project\n      vertex_location: us-central1\n"
        f"      vertex_credentials: {credentials}\n      api_base: {fake.root_url}\n"
        "general_settings:\n  master_key: os.environ/E2E_MASTER_KEY\n"
    )
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2eprovgemini", fake, {}, config=config).start()
    yield s
    s.stop()


def last_upstream_request(fake: FakeUpstream) -> dict:
    return httpx.get(f"{fake.root_url}/_fake/stats", timeout=5).json()["last_request"]


def test_gemini_chat_answers_and_meters_exact_usage(stack, fake):
    raw = stack.client().chat.completions.with_raw_response.create(model="gemini-flash", messages=HELLO, max_tokens=5)
    completion, request_id = raw.parse(), raw.headers["x-request-id"]
    assert completion.choices[0].message.content == "w0 w1 w2 w3 w4"
    assert completion.choices[0].finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 5)
    assert last_upstream_request(fake)["path"] == "/v1beta/models/gemini-1.5-flash:generateContent"

    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (4, 5)
    assert row["provider"] == "gemini" and row["upstream_model"] == "gemini-1.5-flash" and row["model_group"] == "gemini-flash"
    assert row["status"] == "success" and row["http_status"] == 200 and row["usage_source"] == "provider"


def test_gemini_stream_with_usage(stack):
    raw = stack.client().chat.completions.with_raw_response.create(
        model="gemini-flash", messages=HELLO, max_tokens=6, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w0 w1 w2 w3 w4 w5"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4, 6)
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (4, 6)
    assert row["stream"] in (1, True) and row["status"] == "success"


def test_gemini_tool_call_round_trip(stack, fake):
    client = stack.client()
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.with_raw_response.create(model="gemini-flash", messages=messages, tools=WEATHER_TOOLS)
    choice = first.parse().choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "Paris"}
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21, "sky": "clear"})},
    ]
    second = client.chat.completions.with_raw_response.create(model="gemini-flash", messages=messages, tools=WEATHER_TOOLS)
    answer = second.parse()
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content.startswith("w0")
    sent = last_upstream_request(fake)["body"]["contents"]
    assert sent[-1] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21, "sky": "clear"}}}],
    }
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    rows = stack.usage_rows(ids)
    assert rows[ids[0]]["completion_tokens"] == 5  # the fake's price of a function call
    assert all(rows[i]["status"] == "success" for i in ids)


def test_gemini_embeddings(stack):
    raw = stack.client().embeddings.with_raw_response.create(model="gemini-embed", input=["the quick fox", "jumps"])
    result = raw.parse()  # (the SDK asks for base64 and decodes it)
    assert [d.index for d in result.data] == [0, 1] and all(len(d.embedding) == 8 for d in result.data)
    again = stack.client().embeddings.create(model="gemini-embed", input="jumps", encoding_format="float")
    assert again.data[0].embedding == pytest.approx(result.data[1].embedding, abs=1e-6)
    request_id = raw.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert row["provider"] == "gemini" and row["status"] == "success" and row["operation"] == "embeddings"


def test_gemini_rate_limit_reaches_the_client_as_429(stack):
    with pytest.raises(openai.RateLimitError) as info:
        stack.client().chat.completions.create(model="gemini-busy", messages=HELLO)
    assert "exceeded your current quota" in str(info.value)
    assert info.value.response.headers.get("retry-after") == "2"
    request_id = info.value.response.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert row["status"] == "upstream_error" and row["http_status"] == 429 and row["prompt_tokens"] == 0
    assert UPSTREAM_KEY not in stack.logs()


def test_vertex_chat_and_stream_with_a_service_account(stack, fake):
    client = stack.client()
    raw = client.chat.completions.with_raw_response.create(model="vertex-pro", messages=HELLO, max_tokens=3)
    completion = raw.parse()
    assert completion.choices[0].message.content == "w0 w1 w2"
    assert last_upstream_request(fake)["path"] == (
        "/v1/projects/e2e-project/locations/us-central1/publishers/google/models/gemini-1.5-pro:generateContent"
    )
    streamed = client.chat.completions.with_raw_response.create(
        model="vertex-pro", messages=HELLO, max_tokens=4, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(streamed.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w0 w1 w2 w3"
    assert chunks[-1].usage.completion_tokens == 4
    stats = httpx.get(f"{fake.root_url}/_fake/stats", timeout=5).json()
    assert stats["tokens_issued"] == 1 and stats["token_failures"] == 0  # one token served both calls

    ids = [raw.headers["x-request-id"], streamed.headers["x-request-id"]]
    rows = stack.usage_rows(ids)
    assert (rows[ids[0]]["prompt_tokens"], rows[ids[0]]["completion_tokens"]) == (4, 3)
    assert (rows[ids[1]]["prompt_tokens"], rows[ids[1]]["completion_tokens"]) == (4, 4)
    assert all(rows[i]["provider"] == "vertex_ai" and rows[i]["status"] == "success" for i in ids)
    assert rows[ids[0]]["upstream_model"] == "gemini-1.5-pro"


def test_gemini_native_route_with_a_virtual_key_in_the_goog_header(stack, fake):
    """Seed 000's way: the provider's own API at /gemini with a gateway key; the gateway swaps in
    the real key, relays Google's answer as is, and meters it from usageMetadata."""
    key = httpx.post(
        f"{stack.base_url}/key/generate", headers={"authorization": f"Bearer {MASTER_KEY}"}, json={}, timeout=10
    ).json()["key"]
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello there friend"}]}], "generationConfig": {"maxOutputTokens": 4}}
    response = httpx.post(
        f"{stack.base_url}/gemini/v1beta/models/gemini-flash:generateContent",
        headers={"x-goog-api-key": key},
        json=body,
        timeout=20,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["candidates"][0]["content"]["parts"][0]["text"] and answer["usageMetadata"]["candidatesTokenCount"] == 4
    assert last_upstream_request(fake)["path"] == "/v1beta/models/gemini-1.5-flash:generateContent"
    assert fake.api_key not in response.text
    request_id = response.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert row["operation"] == "native" and row["provider"] == "gemini" and row["status"] == "success"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        answer["usageMetadata"]["promptTokenCount"],
        answer["usageMetadata"]["candidatesTokenCount"],
    )
    streamed = httpx.post(
        f"{stack.base_url}/gemini/v1beta/models/gemini-flash:streamGenerateContent?alt=sse&key={key}", json=body, timeout=20
    )
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.count("data: ") >= 2 and "usageMetadata" in streamed.text
    assert key not in last_upstream_request(fake)["query"]  # the gateway key in ?key= never reaches Google
