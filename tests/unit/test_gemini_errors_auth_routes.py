"""Gemini / Vertex AI adapters beyond converting messages: error answers, service-account
assertions and tokens, model URLs, native passthrough paths and usage."""

from __future__ import annotations

import base64
import json
import time

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from llmgw.config import Deployment, Secret
from tests.unit.test_gemini import GEMINI, KEY
from workers.http_client import UpstreamClient
from workers.providers.errors import UpstreamError
from workers.providers.gemini import Gemini, VertexAI
from workers.providers.gemini.errors import google_error_to_upstream_error, retry_delay_seconds
from workers.providers.gemini.native import GoogleNativeUsage, with_model, with_vertex_scope
from workers.providers.gemini.oauth import GRANT_TYPE, SCOPE, TokenSource, load_service_account
from workers.usage import Usage

pytestmark = pytest.mark.unit


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
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
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
