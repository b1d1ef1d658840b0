"""Native passthrough: `/anthropic/...`, `/gemini/...`, `/vertex_ai/...`, `/cohere/...`, `/azure/...`
and `/openai/...` (seed 000's way of working).

A client keeps its provider's own SDK and points its base URL here with a gateway key as its API
key. The edge authenticates the key (from whichever header that SDK sends it in), finds the model
the request names, checks the path, keeps only harmless headers, and sends the call through a
worker, which swaps in the real credential and relays the provider's answer byte for byte while
metering it from the provider's own usage fields.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

import msgspec
from litestar.handlers import asgi

from gateway.asgi_io import Receive, Scope, Send
from gateway.auth import Principal
from gateway.edge import Edge
from gateway.errors import GatewayError
from gateway.pipeline import pipeline_of
from gateway.routes import Call, Headers, Incoming, Route, Target
from llmgw.catalog import NATIVE_ROUTES, PROVIDERS
from llmgw.config import Deployment
from llmgw.contracts import Chunks, Completed, ErrorCode, ErrorType, NativeCall, Operation

# Client headers a provider's SDK needs the upstream to see; everything else (the client's
# credentials, cookies, forwarding headers) stays at the edge.
FORWARDED_HEADERS = frozenset(
    {
        "content-type",
        "accept",
        "anthropic-version",
        "anthropic-beta",
        "openai-beta",
        "x-goog-api-client",
        "x-stainless-helper-method",
    }
)
CREDENTIAL_QUERY_PARAMS = frozenset({"key", "api_key", "api-key", "access_token"})
_SAFE_PATH = re.compile(r"^(/[A-Za-z0-9._~:@!$&'()*+,;=-]+)+/?$")


class _GenerationConfig(msgspec.Struct):
    maxOutputTokens: int | None = None
    max_output_tokens: int | None = None


class _Model(msgspec.Struct):
    model: str | None = None
    stream: bool | None = None
    max_tokens: int | None = None  # Anthropic, OpenAI chat and completions
    max_completion_tokens: int | None = None  # OpenAI chat
    max_output_tokens: int | None = None  # OpenAI Responses
    generationConfig: _GenerationConfig | None = None
    generation_config: _GenerationConfig | None = None

    def output_limit(self) -> int | None:
        """The answer length the request asks for, in whichever field its API names it (the
        worst case it is reserved at; None: the model's own output limit)."""
        config = self.generationConfig or self.generation_config
        asked = [
            self.max_tokens,
            self.max_completion_tokens,
            self.max_output_tokens,
            config.maxOutputTokens if config is not None else None,
            config.max_output_tokens if config is not None else None,
        ]
        limits = [a for a in asked if isinstance(a, int) and a > 0]
        return max(limits) if limits else None


_model_decoder = msgspec.json.Decoder(_Model)


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def checked_path(raw_path: bytes, prefix: str) -> str:
    """The path below `/<provider>`, refused when it could leave the provider's API root:
    dot segments, encoded slashes or dots, backslashes, empty segments, control characters."""
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise _bad("the path must be ASCII") from None
    path = text[len(prefix) :]
    if "%" in path or "\\" in path or "//" in path:
        raise _bad("the path holds encoded characters, backslashes or empty segments")
    if not _SAFE_PATH.match(path) or any(seg in (".", "..") for seg in path.split("/")):
        raise _bad("the path is not a plain API path")
    return path


def forwarded_headers(scope: Scope) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in scope["headers"]:
        lname = name.decode("latin-1").lower()
        if lname in FORWARDED_HEADERS:
            text = value.decode("latin-1")
            if "\r" in text or "\n" in text or "\x00" in text:
                raise _bad(f"header {lname} holds control characters")
            out.append((lname, text))
    return out


def client_key(scope: Scope, query: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(authorization, key) as the provider's SDK sends the key: `Authorization: Bearer`,
    `x-api-key` (Anthropic), `x-goog-api-key` or `?key=` (Gemini), `api-key` (Azure)."""
    authorization = other = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = authorization or value.decode("latin-1")
        elif name in (b"x-api-key", b"x-goog-api-key", b"api-key"):
            other = other or value.decode("latin-1")
    if other is None:
        other = next((v for k, v in query if k == "key"), None)
    return authorization, other


def requested_model(model_path: re.Pattern[str] | None, path: str, body: bytes) -> tuple[str | None, bool, int | None]:
    """(model, stream, max_tokens) as the native request states them: in the body's `model`, or
    in the path where the provider's API names it there (`ProviderInfo.native_model_path`)."""
    probe = _Model()
    if body:
        try:
            probe = _model_decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise _bad(f"Invalid request: {exc}") from None
        except msgspec.DecodeError:
            probe = _Model()  # not JSON (an upload): the path must name the model
    match = model_path.search(path) if model_path is not None else None
    if match is not None:
        method = match.groupdict().get("method")
        stream = "stream" in method.lower() if method is not None else bool(probe.stream)
        return match.group("model"), stream, probe.output_limit()
    return probe.model, bool(probe.stream), probe.output_limit()


def native_deployment(edge: Edge, principal: Principal, provider: str, model_name: str) -> tuple[Deployment, str]:
    """The deployment of `provider` serving the named model (its group name, `<provider>/<name>`,
    or a deployment whose upstream model it is), as the key is allowed to use it."""
    family = PROVIDERS[provider].family
    candidates = [model_name, f"{provider}/{model_name}"]
    candidates += edge.router.by_upstream_model.get(model_name, [])
    denied: GatewayError | None = None
    for name in candidates:
        if not edge.router.group(name):
            continue
        try:
            model = edge.access.resolve(principal, name)
        except GatewayError as exc:
            denied = denied or exc
            continue
        for deployment in edge.router.plan(model).deployments:
            if PROVIDERS[deployment.provider].family == family:
                return deployment, model
    if denied is not None:
        raise denied
    raise GatewayError(
        404, f"No {provider} deployment serves the model `{model_name}`.", ErrorType.NOT_FOUND, ErrorCode.MODEL_NOT_FOUND, "model"
    )


def _latin1_headers(pairs: list[tuple[str, str]]) -> Headers:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


class RawStream:
    """A native stream: the provider's bytes as they came; a failure after the start just ends it."""

    __slots__ = ()

    def head(self, first: Chunks) -> tuple[int, Headers]:
        return first.status or 200, _latin1_headers(first.headers)

    def data(self, chunks: list[bytes]) -> bytes:
        return b"".join(chunks)

    def end(self) -> bytes:
        return b""

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes:
        return b""


RAW_STREAM = RawStream()


class NativeRoute(Route):
    """`/<provider>/...`: the provider's own API, any method, relayed as it answers."""

    operation = Operation.NATIVE
    post_only = False
    policies = False

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.prefix = f"/{provider}"
        pattern = PROVIDERS[provider].native_model_path
        self.model_path = re.compile(pattern) if pattern else None

    def incoming(self, scope: Scope) -> Incoming:
        path = checked_path(scope.get("raw_path") or scope["path"].encode(), self.prefix)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        authorization, key = client_key(scope, query)
        length = next((int(v) for k, v in scope["headers"] if k == b"content-length" and v.isdigit()), None)
        incoming = Incoming(authorization, key, length)
        incoming.path, incoming.query = path, query
        return incoming

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        model, stream, max_tokens = requested_model(self.model_path, incoming.path, body)
        if not model:
            raise _bad("the request names no model", "model")
        native = NativeCall(
            method=scope["method"],
            path=incoming.path,
            query=urlencode([(k, v) for k, v in incoming.query if k not in CREDENTIAL_QUERY_PARAMS]),
            headers=forwarded_headers(scope),
        )
        return Call(model, body, stream=stream, max_tokens=max_tokens, native=native)

    def target(self, edge: Edge, principal: Principal, call: Call) -> Target:
        deployment, model = native_deployment(edge, principal, self.provider, call.model)
        return Target(model, [deployment])

    def whole(self, reply: Completed, call: Call, request_id: str) -> tuple[int, Headers, bytes]:
        headers = _latin1_headers([(k, v) for k, v in reply.headers if k != "content-type"])
        content_type = next((v for k, v in reply.headers if k == "content-type"), "application/json")
        headers.append((b"content-type", content_type.encode("latin-1")))
        return reply.status, headers, reply.body

    def stream(self, call: Call, request_id: str) -> RawStream:
        return RAW_STREAM


def native_handler(route: NativeRoute) -> asgi:
    @asgi(route.prefix, is_mount=True, copy_scope=False, name=f"native-{route.provider}")
    async def native(scope: Scope, receive: Receive, send: Send) -> None:
        await pipeline_of(scope).run(scope, receive, send, route)

    return native


# /openai last: its prefix must not shadow the OpenAI-compatible routes mounted under /openai/v1.
ROUTES = [native_handler(NativeRoute(p)) for p in NATIVE_ROUTES if p != "openai"] + [native_handler(NativeRoute("openai"))]
