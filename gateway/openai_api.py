"""The OpenAI-compatible routes: chat completions (whole or streamed), embeddings, models (the
listing: gateway/models_list.py).

Chat completions and embeddings are raw ASGI handlers mounted in Litestar: Litestar's request and
response layer (signature model, Request and Response objects, header parsing) costs ~100 us of CPU
per request, against ~25 us for an ASGI route (measured with a stub handler, no network), and
these routes carry all the traffic. Litestar still routes them and its exception handlers still
answer anything they raise. Each request's life is the pipeline's (`gateway.pipeline`); a route
says only how its body is read and how its answers are written.
"""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get
from litestar.handlers import asgi

from gateway.asgi_io import SSE_HEADERS, Receive, Scope, Send
from gateway.auth import Principal
from gateway.chat_resume import ResumableChatStream, resumable_by_default, wants_resumable
from gateway.edge import Edge
from gateway.errors import GatewayError, error_json, error_response, note_key_guess
from gateway.limits_policy import apply_max_tokens
from gateway.pipeline import pipeline_of
from gateway.routes import Call, Headers, Incoming, Route, openai_paths
from gateway.schemas import parse_chat, parse_embeddings
from gateway.stored_chat.keeping import Keeping, StoringStream, keeping, stored_id
from gateway.stored_chat.listing import list_stored
from llmgw.contracts import Chunks, Completed, Operation

__all__ = ["CHAT", "EMBEDDINGS", "OPENAI_STREAM", "RESUMABLE_CHAT", "ROUTES", "OpenAIStream", "openai_paths"]

_encoder = msgspec.json.Encoder()


class OpenAIStream:
    """A relayed stream as OpenAI's server-sent events: `data: <chunk>` lines, then `[DONE]`."""

    __slots__ = ()

    def head(self, first: Chunks) -> tuple[int, Headers]:
        return 200, list(SSE_HEADERS)

    def data(self, chunks: list[bytes]) -> bytes:
        return b"".join([b"data: " + d + b"\n\n" for d in chunks])

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes:
        return b"data: " + error_json(message, type, code) + b"\n\n"


OPENAI_STREAM = OpenAIStream()


class ChatRoute(Route):
    """Chat completions; one with `store: true` is kept (gateway/stored_chat) once it is complete."""

    operation = Operation.CHAT

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        parsed = parse_chat(body)
        body = apply_max_tokens(body, parsed, edge.settings)
        stream = bool(parsed.stream)
        include_usage = bool(stream and parsed.stream_options and parsed.stream_options.include_usage)
        state: Keeping | None = None
        if parsed.store:
            state, body = keeping(edge.chat_completions, parsed.model, body)
            state.client_usage = include_usage
        call = Call(
            parsed.model,
            body,
            stream=stream,
            include_usage=include_usage or (stream and state is not None),  # (a stored stream keeps its usage)
            max_tokens=parsed.max_completion_tokens or parsed.max_tokens,
            n=parsed.n or 1,
            timeout=parsed.timeout,
        )
        call.state = state
        return call

    async def resolve(self, edge: Edge, principal: Principal, call: Call) -> None:
        if call.state is not None:
            call.state.caller = principal.caller

    def answer_id(self, call: Call, request_id: str) -> str | None:
        return None if call.state is None else stored_id(request_id)

    def whole(self, reply: Completed, call: Call, request_id: str) -> tuple[int, Headers, bytes]:
        body = reply.body if call.state is None else call.state.keep_whole(reply.body, stored_id(request_id))
        return 200, [(b"content-type", b"application/json")], body

    def stream(self, call: Call, request_id: str) -> OpenAIStream | StoringStream:
        return OPENAI_STREAM if call.state is None else StoringStream(call.state, OPENAI_STREAM, stored_id(request_id))

    async def answered(self, edge: Edge, principal: Principal, call: Call, request_id: str, body: bytes | None) -> None:
        if call.state is not None and call.state.kept is not None:
            await edge.chat_completions.written(call.state.kept)


class EmbeddingsRoute(Route):
    operation = Operation.EMBEDDINGS

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        parsed = parse_embeddings(body)
        return Call(parsed.model, body, timeout=parsed.timeout)

    def stream(self, call: Call, request_id: str) -> OpenAIStream:
        return OPENAI_STREAM


class ResumableChatRoute(ChatRoute):
    """A streamed chat request sent with `x-llmgw-resumable: true`: run by the edge, resumable
    (gateway/chat_resume.py)."""

    def background(self, edge: Edge, principal: Principal, call: Call, request_id: str) -> ResumableChatStream | None:
        return ResumableChatStream(edge, principal.caller, request_id) if call.stream else None


class KeyChoiceChatRoute(ChatRoute):
    """A chat request with no `x-llmgw-resumable` header: resumable when its key (or team) says so."""

    def background(self, edge: Edge, principal: Principal, call: Call, request_id: str) -> ResumableChatStream | None:
        if call.stream and resumable_by_default(principal):
            return ResumableChatStream(edge, principal.caller, request_id)
        return None


CHAT = ChatRoute()
RESUMABLE_CHAT = ResumableChatRoute()
KEY_CHOICE_CHAT = KeyChoiceChatRoute()
_CHAT_BY_HEADER = {True: RESUMABLE_CHAT, False: CHAT, None: KEY_CHOICE_CHAT}
EMBEDDINGS = EmbeddingsRoute()


@asgi(openai_paths("chat/completions"), copy_scope=False)
async def chat_completions(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] == "GET":  # the stored chat completions (`store: true`)
        await list_stored(scope, send)
        return
    await pipeline_of(scope).run(scope, receive, send, _CHAT_BY_HEADER[wants_resumable(scope)])


@asgi(openai_paths("embeddings"), copy_scope=False)
async def embeddings(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, EMBEDDINGS)


@get(openai_paths("models"))
async def models(request: Request) -> Response:
    edge: Edge = request.app.state.edge
    try:
        principal = await edge.auth.authenticate_fresh(request.headers.get("authorization"), request.headers.get("api-key"))
    except GatewayError as exc:
        note_key_guess(request.scope, exc)
        return error_response(exc)
    data = [m for m in edge.models.models if edge.access.allows(principal, m.id)]
    return Response(content=_encoder.encode({"object": "list", "data": data}), media_type="application/json")


ROUTES = [chat_completions, embeddings, models]
