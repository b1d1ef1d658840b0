"""Native passthrough: `/anthropic/...`, `/gemini/...`, `/vertex_ai/...`, `/cohere/...`, `/azure/...`
and `/openai/...` (seed 000's way of working).

A client keeps its provider's own SDK and points its base URL here with a gateway key as its API
key. The edge authenticates the key (from whichever header that SDK sends it in), finds the model
the request names, checks the path, keeps only harmless headers, and sends the call through a
worker, which swaps in the real credential and relays the provider's answer byte for byte while
metering it from the provider's own usage fields.
"""

from __future__ import annotations

import os
import re
import time
from urllib.parse import parse_qsl, urlencode

import msgspec
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send

from gateway import admission
from gateway.asgi_io import RequestLog, cancel_on_disconnect, failure_error, next_reply, read_body, send_error
from gateway.edge import Edge
from gateway.errors import GatewayError
from llmgw.catalog import NATIVE_ROUTES, PROVIDERS
from llmgw.contracts import Chunks, Completed, ErrorCode, ErrorType, Failed, NativeCall, Operation, UpstreamRequest

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
_GEMINI_MODEL = re.compile(r"/models/([^/:]+)(?::(\w+))?$")
_AZURE_DEPLOYMENT = re.compile(r"^/openai/deployments/([^/]+)/")
_SAFE_PATH = re.compile(r"^(/[A-Za-z0-9._~:@!$&'()*+,;=-]+)+/?$")


class _Model(msgspec.Struct):
    model: str | None = None
    stream: bool | None = None
    max_tokens: int | None = None


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


def requested_model(provider: str, path: str, body: bytes) -> tuple[str | None, bool, int | None]:
    """(model, stream, max_tokens) as the native request states them."""
    probe = _Model()
    if body:
        try:
            probe = _model_decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise _bad(f"Invalid request: {exc}") from None
        except msgspec.DecodeError:
            probe = _Model()  # not JSON (an upload): the path must name the model
    if provider in ("gemini", "vertex_ai"):
        match = _GEMINI_MODEL.search(path)
        if match:
            return match.group(1), "stream" in (match.group(2) or "").lower(), None
    if provider == "azure":
        match = _AZURE_DEPLOYMENT.match(path)
        if match:
            return match.group(1), bool(probe.stream), probe.max_tokens
    return probe.model, bool(probe.stream), probe.max_tokens


def build_native_routes(edge: Edge) -> list:
    max_body = edge.settings.max_body_bytes

    def route(provider: str):
        prefix = f"/{provider}"

        @asgi(prefix, is_mount=True, copy_scope=False, name=f"native-{provider}")
        async def native(scope: Scope, receive: Receive, send: Send) -> None:
            await passthrough(scope, receive, send, provider, prefix)

        return native

    async def passthrough(scope: Scope, receive: Receive, send: Send, provider: str, prefix: str) -> None:
        started = time.time()
        request_id = f"req-{os.urandom(16).hex()}"
        rlog = RequestLog(request_id, started)
        handed_to_stream = False
        try:
            path = checked_path(scope.get("raw_path") or scope["path"].encode(), prefix)
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            authorization, key = client_key(scope, query)
            principal = await edge.auth.authenticate_fresh(authorization, key)
            content_length = next((int(v) for k, v in scope["headers"] if k == b"content-length" and v.isdigit()), None)
            body = await read_body(receive, content_length, max_body)
            model_name, stream, max_tokens = requested_model(provider, path, body)
            if not model_name:
                raise _bad("the request names no model", "model")
            rlog.model, rlog.stream = model_name, stream
            deployment, model = resolve(edge, principal, provider, model_name)
            deadline = started + edge.settings.request_timeout
            admitted = await admission.admit(edge.ratelimits, principal, [deployment], request_id, deadline)
            try:
                ledgers, reserved, cost_cap = await edge.budgets.admit(
                    principal,
                    model,
                    deployment,
                    deployment.upstream_model_for(model),
                    len(body),
                    max_tokens,
                    request_id,
                    deadline,
                )
            except GatewayError:
                await admission.release(edge.ratelimits, admitted, 0)
                raise
            upstream_request = UpstreamRequest(
                request_id=request_id,
                reply_to=edge.dispatcher.reply_subject,
                operation=Operation.NATIVE,
                model_group=model,
                deployment_id=deployment.id,
                body=body,
                stream=stream,
                include_usage=False,
                deadline=deadline,
                received_at=started,
                caller=principal.caller,
                cost_cap=cost_cap,
                ledgers=ledgers,
                native=NativeCall(
                    method=scope["method"],
                    path=path,
                    query=urlencode([(k, v) for k, v in query if k not in CREDENTIAL_QUERY_PARAMS]),
                    headers=forwarded_headers(scope),
                ),
            )
            queue = edge.dispatcher.open(request_id)
            try:
                try:
                    await edge.dispatcher.submit(deployment.provider, upstream_request, principal.priority)
                except GatewayError:
                    await edge.budgets.release(request_id, reserved, ledgers)
                    raise
                first = await next_reply(queue, deadline)
                if isinstance(first, Failed):
                    await edge.budgets.settle(request_id, reserved, ledgers, first.cost)
                    await admission.release(edge.ratelimits, admitted, first.tokens)
                    raise failure_error(first)
                if isinstance(first, Completed):
                    await edge.budgets.settle(request_id, reserved, ledgers, first.cost)
                    await admission.release(edge.ratelimits, admitted, first.tokens)
                    rlog.status = first.status
                    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in first.headers if k != "content-type"]
                    headers.append((b"x-request-id", request_id.encode()))
                    headers.extend(admitted.headers())
                    content_type = next((v for k, v in first.headers if k == "content-type"), "application/json")
                    await _send_raw(send, first.status, first.body, headers, content_type)
                    return
                if isinstance(first, Chunks) and first.raw:
                    handed_to_stream = True

                    async def relay() -> None:
                        await _relay_raw(edge, first, queue, deadline, rlog, send, reserved, ledgers, admitted)

                    try:
                        await cancel_on_disconnect(relay(), receive)
                    finally:
                        await admission.release(edge.ratelimits, admitted, 0)  # (a no-op once released with tokens)
                    return
                raise GatewayError(502, "the worker answered in an unexpected form", ErrorType.API, ErrorCode.INTERNAL)
            finally:
                if not handed_to_stream:
                    edge.dispatcher.close(request_id)
                    await admission.release(edge.ratelimits, admitted, 0)  # (a no-op once released with tokens)
        except GatewayError as exc:
            rlog.status, rlog.code = exc.status, exc.code
            await send_error(send, exc, request_id)
        finally:
            if not handed_to_stream:
                rlog.emit()

    return [route(p) for p in NATIVE_ROUTES if p != "openai"] + [route("openai")]


def resolve(edge: Edge, principal, provider: str, model_name: str):
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


async def _send_raw(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], content_type: str) -> None:
    headers.append((b"content-type", content_type.encode("latin-1")))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _relay_raw(
    edge: Edge,
    first: Chunks,
    queue,
    deadline: float,
    rlog: RequestLog,
    send: Send,
    reserved,
    ledgers,
    admitted,
) -> None:
    """Relay a native stream's bytes as they come; a failure after the start ends the connection."""
    finished = False
    reply = first
    try:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in first.headers]
        headers.append((b"x-request-id", rlog.request_id.encode()))
        headers.extend(admitted.headers())
        rlog.status = first.status or 200
        await send({"type": "http.response.start", "status": first.status or 200, "headers": headers})
        while True:
            if isinstance(reply, Chunks):
                if reply.attempt != first.attempt:
                    rlog.status, rlog.code = 502, ErrorCode.UPSTREAM_ERROR
                    finished = True
                    await edge.dispatcher.cancel(rlog.request_id)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                data = b"".join(reply.data)
                if reply.done:
                    await edge.budgets.settle(rlog.request_id, reserved, ledgers, reply.cost)
                    await admission.release(edge.ratelimits, admitted, reply.tokens)
                    finished = True
                    await send({"type": "http.response.body", "body": data, "more_body": False})
                    return
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            elif isinstance(reply, Failed):
                await edge.budgets.settle(rlog.request_id, reserved, ledgers, reply.cost)
                await admission.release(edge.ratelimits, admitted, reply.tokens)
                finished = True
                rlog.status, rlog.code = reply.status, reply.code
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            reply = await next_reply(queue, deadline)
    except GatewayError as exc:
        finished = True
        rlog.status, rlog.code = exc.status, exc.code
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        edge.dispatcher.close(rlog.request_id)
        if not finished:
            rlog.status, rlog.code = 499, "client_closed"
            await edge.dispatcher.cancel(rlog.request_id)
        rlog.emit()
