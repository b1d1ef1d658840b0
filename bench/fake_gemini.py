"""Fake Google upstream: the Gemini API and Vertex AI (with its OAuth token endpoint) in one server.

The wire format follows the public references:
  https://ai.google.dev/api/generate-content   (models.generateContent, models.streamGenerateContent:
      `?alt=sse` gives `data: {GenerateContentResponse}\\r\\n\\r\\n` events, else one JSON array;
      candidates[].content.parts, finishReason, usageMetadata, modelVersion, responseId)
  https://ai.google.dev/api/embeddings         (models.batchEmbedContents, models.embedContent)
  https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.publishers.models/generateContent
      (and :streamGenerateContent, :predict for text-embedding models: predictions[].embeddings
      {values, statistics {token_count, truncated}})
  https://developers.google.com/identity/protocols/oauth2/service-account (POST token_uri with
      grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<RS256 JWT> ->
      {"access_token", "expires_in", "token_type"}; refusals {"error": "invalid_grant", ...})
  https://cloud.google.com/apis/design/errors  ({"error": {"code", "message", "status", "details"}})

Endpoints:
  POST /v1beta/models/{m}:generateContent | :streamGenerateContent | :batchEmbedContents | :embedContent
       credential `x-goog-api-key: KEY` or `?key=KEY`; none -> 403 PERMISSION_DENIED, a wrong
       one -> 400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID (as the real API answers)
  POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent
       | :streamGenerateContent | :predict
       credential `Authorization: Bearer <token>` issued by POST /token -> else 401 UNAUTHENTICATED
  POST /token   verifies the JWT's RS256 signature against the public keys the fake was started
       with (`--vertex-public-key PATH`, PEM), its aud (this server's /token), iat/exp and scope
  GET /_fake/stats -> {"requests", "by_model", "auth_failures", "token_requests", "tokens_issued",
       "token_failures", "last_request": {"path", "query", "body"}}; POST /_fake/reset;
  POST /_fake/revoke-tokens (every issued access token stops working).
Answers and token accounting: fake_gemini_payloads.py. Faults by model name:
fake-error-{400,401,403,404,429,500,503}, fake-slow-<ms>, fake-hang, fake-stream-fail (three
words, then the connection drops), fake-stream-truncated (three words, then the body ends
without a finishReason).

CLI:  python -m bench.fake_gemini --host 127.0.0.1 --port 0 [--api-key KEY]
          [--vertex-public-key PATH ...] [--token-ttl 3599]          (prints "READY <port>")
Code: handle, port = await start_fake(api_key="k", vertex_public_keys=[pem]); ...; await handle.stop()
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench import fake_gemini_payloads as payloads
from bench.fake_gemini_payloads import BadRequest, google_error
from bench.fake_http import DropConnection, FakeServerHandle, Request, Response, StreamResponse, fake_cli, start_app

JSON_HEADERS = {"Content-Type": "application/json; charset=UTF-8"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
STREAM_FAIL_AFTER_WORDS = 3
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_GEMINI = re.compile(r"^/(?:v1beta|v1)/models/([^/:]+):(\w+)$")
_VERTEX = re.compile(r"^/(?:v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+):(\w+)$")
_GEMINI_METHODS = ("generateContent", "streamGenerateContent", "batchEmbedContents", "embedContent")
_VERTEX_METHODS = ("generateContent", "streamGenerateContent", "predict")
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)

# model name -> (HTTP status, Google status, message, details)
FAULTS: dict[str, tuple[int, str, str, list[dict]]] = {
    "fake-error-400": (400, "INVALID_ARGUMENT", "Request contains an invalid argument.", []),
    "fake-error-401": (401, "UNAUTHENTICATED", _UNAUTHENTICATED, []),
    "fake-error-403": (403, "PERMISSION_DENIED", "Permission denied: Consumer has been suspended.", []),
    "fake-error-404": (
        404,
        "NOT_FOUND",
        "models/fake-error-404 is not found for API version v1beta, or is not supported for generateContent. "
        "Call ListModels to see the list of available models and their supported methods.",
        [],
    ),
    "fake-error-429": (
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"},
        ],
    ),
    "fake-error-500": (
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        [],
    ),
    "fake-error-503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", []),
}


def _json(doc: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(doc).encode(), JSON_HEADERS)


def _error(code: int, status: str, message: str, details: list[dict] | None = None) -> Response:
    return Response(code, google_error(code, status, message, details), JSON_HEADERS)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class TokenRefused(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def verify_assertion(assertion: str, keys: list[rsa.RSAPublicKey], audience: str, now: float) -> dict[str, Any]:
    """The claims of a service account's JWT, once its RS256 signature and claims check out."""
    try:
        head, body, signature = assertion.split(".")
        header, claims = json.loads(_b64decode(head)), json.loads(_b64decode(body))
        raw_signature = _b64decode(signature)
    except ValueError:
        raise TokenRefused("invalid_grant", "Invalid JWT: not a JWS.") from None
    if header.get("alg") != "RS256":
        raise TokenRefused("invalid_grant", "Invalid JWT: unsupported signing algorithm.")
    for key in keys:
        try:
            key.verify(raw_signature, f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
            break
        except InvalidSignature:
            continue
    else:
        raise TokenRefused("invalid_grant", "Invalid JWT Signature.")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or exp < now or iat > now + 300:
        raise TokenRefused(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
            "Check your iat and exp values in the JWT claim.",
        )
    if claims.get("aud") != audience:
        raise TokenRefused("invalid_grant", "Invalid JWT: Failed audience check.")
    if not claims.get("scope") or not claims.get("iss"):
        raise TokenRefused("invalid_scope", "Invalid oauth scope or ID token audience provided.")
    return claims


@dataclass
class GoogleStats:
    requests: int = 0
    by_model: dict[str, int] = field(default_factory=dict)
    auth_failures: int = 0
    token_requests: int = 0
    tokens_issued: int = 0
    token_failures: int = 0
    last_request: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "by_model": dict(self.by_model)}

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


class FakeGoogle:
    """Routing, credentials (API key and OAuth tokens), faults and answers."""

    def __init__(self, api_key: str | None = None, vertex_public_keys: list[bytes] = (), token_ttl: int = 3599) -> None:
        self.api_key = api_key
        self.public_keys = [serialization.load_pem_public_key(pem) for pem in vertex_public_keys]
        self.token_ttl = token_ttl
        self.tokens: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        self.stats = GoogleStats()

    async def handle(self, request: Request) -> Response | StreamResponse:
        path = request.path.split("?", 1)[0]
        if request.method == "POST" and (match := _GEMINI.match(path)):
            model, method = match.groups()
            return await self._api_call(request, model, method, vertex=False)
        if request.method == "POST" and (match := _VERTEX.match(path)):
            _, _, model, method = match.groups()
            return await self._api_call(request, model, method, vertex=True)
        if request.method == "POST" and path == "/token":
            return self._token(request)
        if path == "/_fake/stats" and request.method == "GET":
            return _json(self.stats.as_dict())
        if path == "/_fake/reset" and request.method == "POST":
            self.stats.reset()
            return _json({"ok": True})
        if path == "/_fake/revoke-tokens" and request.method == "POST":
            self.tokens.clear()
            return _json({"ok": True})
        return _error(404, "NOT_FOUND", f"Method not found: {request.method} {path}")

    # ---- credentials ----

    def _gemini_auth(self, request: Request) -> Response | None:
        key = request.headers.get("x-goog-api-key") or (parse_qs(request.query).get("key") or [None])[0]
        if self.api_key is None or key == self.api_key:
            return None
        self.stats.auth_failures += 1
        if not key:
            return _error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        return _error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            [
                {
                    "@type": _ERROR_INFO,
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ],
        )

    def _vertex_auth(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is not None and expiry > time.time():
            return None
        self.stats.auth_failures += 1
        if expiry is not None:
            reason = "ACCESS_TOKEN_EXPIRED"
        else:
            reason = "ACCESS_TOKEN_TYPE_UNSUPPORTED" if token else "CREDENTIALS_MISSING"
        info = {
            "@type": _ERROR_INFO,
            "reason": reason,
            "domain": "googleapis.com",
            "metadata": {"service": "aiplatform.googleapis.com"},
        }
        return _error(401, "UNAUTHENTICATED", _UNAUTHENTICATED, [info])

    def _token(self, request: Request) -> Response:
        self.stats.token_requests += 1
        form = {k: v[0] for k, v in parse_qs(request.body.decode("latin-1")).items()}
        audience = f"http://{request.headers.get('host', '')}/token"
        try:
            if form.get("grant_type") != GRANT_TYPE:
                raise TokenRefused("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
            verify_assertion(form.get("assertion", ""), self.public_keys, audience, time.time())
        except TokenRefused as exc:
            self.stats.token_failures += 1
            return _json({"error": exc.error, "error_description": exc.description}, 400)
        token = "ya29.fake-" + os.urandom(24).hex()
        self.tokens[token] = time.time() + self.token_ttl
        self.stats.tokens_issued += 1
        return _json({"access_token": token, "expires_in": self.token_ttl, "token_type": "Bearer"})

    # ---- model calls ----

    async def _api_call(self, request: Request, model: str, method: str, vertex: bool) -> Response | StreamResponse:
        self.stats.requests += 1
        refused = self._vertex_auth(request) if vertex else self._gemini_auth(request)
        if refused is not None:
            return refused
        if method not in (_VERTEX_METHODS if vertex else _GEMINI_METHODS):
            return _error(404, "NOT_FOUND", f"Method not found: {method}")
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(body, dict):
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
        self.stats.by_model[model] = self.stats.by_model.get(model, 0) + 1
        self.stats.last_request = {"path": request.path, "query": request.query, "body": body}
        fault = FAULTS.get(model)
        if fault is not None:
            return _error(*fault)
        if model == "fake-hang":
            await asyncio.Future()  # cancelled when the client disconnects
        if model.startswith("fake-slow-") and model[10:].isdigit():
            await asyncio.sleep(int(model[10:]) / 1000)
        try:
            if method == "generateContent":
                return _json(payloads.Answer(body, model, vertex).whole())
            if method == "streamGenerateContent":
                answer = payloads.Answer(body, model, vertex)
                sse = "alt=sse" in request.query.split("&")
                return StreamResponse(self._stream(answer, model, sse), headers=SSE_HEADERS if sse else JSON_HEADERS)
            if method == "batchEmbedContents":
                return _json(payloads.batch_embed(body, model))
            if method == "embedContent":
                return _json(payloads.embed_one(body))
            return _json(payloads.vertex_predict(body))
        except BadRequest as exc:
            return _error(400, "INVALID_ARGUMENT", str(exc))

    async def _stream(self, answer: payloads.Answer, model: str, sse: bool) -> AsyncIterator[bytes]:
        cut = model in ("fake-stream-fail", "fake-stream-truncated")
        events = answer.events(STREAM_FAIL_AFTER_WORDS if cut else None)
        for i, event in enumerate(events):
            data = json.dumps(event)
            if sse:
                yield f"data: {data}\r\n\r\n".encode()
            else:  # one JSON array, written as the events come
                yield (("[" if i == 0 else ",\r\n") + data + ("]" if i == len(events) - 1 and not cut else "")).encode()
            await asyncio.sleep(0)
        if model == "fake-stream-fail":
            raise DropConnection


async def start_fake(
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    vertex_public_keys: list[bytes] = (),
    token_ttl: int = 3599,
) -> tuple[FakeServerHandle, int]:
    """Start the fake upstream on the running loop; returns (handle, actual port). Its OAuth token
    endpoint is `<root_url>/token`."""
    return await start_app(FakeGoogle(api_key, list(vertex_public_keys), token_ttl), host, port)


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vertex-public-key", action="append", help="PEM public key of a service account (repeatable)")
    parser.add_argument("--token-ttl", type=int, default=3599, help="seconds an issued access token lives")


def _start(args: argparse.Namespace):
    keys = [Path(path).read_bytes() for path in args.vertex_public_key or ()]
    return start_fake(args.host, args.port, args.api_key, keys, args.token_ttl)


def main(argv: list[str] | None = None) -> None:
    fake_cli(
        "python -m bench.fake_gemini", __doc__, _start, argv, "the Gemini API key to require (x-goog-api-key or ?key=)", _flags
    )


if __name__ == "__main__":
    sys.exit(main())
