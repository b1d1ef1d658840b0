"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API for any
configured model.

An Anthropic deployment gets a Messages request as it came (`Operation.NATIVE` to its
`/v1/messages`, see forwarding.py) and its answer is relayed as it comes. Every other deployment
gets it translated into the gateway's OpenAI chat-completions body, and the answer comes back in
Anthropic's wire format (a whole `message`, or its stream of events), so an Anthropic SDK client or
Claude Code can use an OpenAI, Gemini or self-hosted model. Fallbacks go only to deployments of
the same kind. Errors are in Anthropic's error shape.

count_tokens goes to a worker like any call (`Operation.COUNT_TOKENS`): an Anthropic deployment
answers it itself; for the others the worker counts the request's text with the offline tokenizer
(llmgw.tokens), knowing the upstream model whose encoding counts it. It is metered as a request
that cost nothing.
"""

from __future__ import annotations

from litestar.handlers import asgi

from gateway.anthropic_messages.forwarding import FORWARDED_STREAM, ForwardedStream, native_call, whole_answer
from gateway.anthropic_messages.reply import chat_completion_to_message, message_id
from gateway.anthropic_messages.request import Envelope, parse_envelope, parse_messages_request
from gateway.anthropic_messages.stream import StreamTranslator
from gateway.anthropic_messages.to_chat import messages_to_chat_body
from gateway.anthropic_messages.wire import anthropic_error_json, anthropic_error_type
from gateway.asgi_io import SSE_HEADERS, Receive, Scope, Send
from gateway.auth import Principal
from gateway.edge import Edge
from gateway.errors import GatewayError
from gateway.limits_policy import apply_max_tokens
from gateway.pipeline import pipeline_of
from gateway.routes import Call, Headers, Incoming, Route, Target
from llmgw.catalog import PROVIDERS
from llmgw.config import Deployment
from llmgw.contracts import Chunks, Completed, NativeCall, Operation


def forwards_messages(deployment: Deployment) -> bool:
    """Whether a deployment takes Messages requests as they are (Anthropic's own API)."""
    return PROVIDERS[deployment.provider].family == "anthropic"


class AnthropicStream:
    """The worker's OpenAI chunks as Anthropic stream events."""

    __slots__ = ("translator",)

    def __init__(self, model: str, request_id: str) -> None:
        self.translator = StreamTranslator(model, message_id(request_id))

    def head(self, first: Chunks) -> tuple[int, Headers]:
        return 200, list(SSE_HEADERS)

    def data(self, chunks: list[bytes]) -> bytes:
        return b"".join([self.translator.feed(d) for d in chunks])

    def end(self) -> bytes:
        return self.translator.finish()

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes:
        return self.translator.error_event(message, anthropic_error_type(status))


class MessagesCall:
    """What the route knows of one request between `parse` and its answer (the call's `state`)."""

    __slots__ = ("chat_body", "envelope", "forwarded", "native")

    def __init__(self, envelope: Envelope, forwarded: NativeCall) -> None:
        self.envelope = envelope
        self.forwarded = forwarded  # the call an Anthropic deployment gets
        self.native = False  # the deployment chosen takes the request as it came
        self.chat_body = b""  # the translation, for the others


class MessagesRoute(Route):
    operation = Operation.CHAT

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        envelope = parse_envelope(body)
        body = apply_max_tokens(body, envelope, edge.settings)
        call = Call(envelope.model, body, stream=envelope.stream, max_tokens=envelope.max_tokens)
        call.state = MessagesCall(envelope, native_call(scope, "/v1/messages"))
        return call

    def target(self, edge: Edge, principal: Principal, call: Call) -> Target:
        target = super().target(edge, principal, call)
        state: MessagesCall = call.state
        native = state.native = bool(target.candidates) and forwards_messages(target.candidates[0])

        def same_kind(ids: list[str]) -> list[str]:
            return [i for i in ids if (d := edge.settings.config.deployment(i)) is not None and forwards_messages(d) == native]

        if not native:
            state.chat_body = messages_to_chat_body(parse_messages_request(call.body, state.envelope))
            call.include_usage = call.stream
        return Target(
            target.model_group,
            [d for d in target.candidates if forwards_messages(d) == native],
            same_kind(target.fallbacks),
            same_kind(target.context_fallbacks),
        )

    def prepare(self, edge: Edge, call: Call, deployment: Deployment) -> None:
        state: MessagesCall = call.state
        if state.native:
            call.operation, call.native = Operation.NATIVE, state.forwarded
        else:
            call.body = state.chat_body

    def answer_id(self, call: Call, request_id: str) -> str | None:
        return None if call.state.native else message_id(request_id)

    def whole(self, reply: Completed, call: Call, request_id: str) -> tuple[int, Headers, bytes]:
        if call.state.native:
            return whole_answer(reply)
        return (
            200,
            [(b"content-type", b"application/json")],
            chat_completion_to_message(reply.body, call.model, message_id(request_id)),
        )

    def stream(self, call: Call, request_id: str) -> AnthropicStream | ForwardedStream:
        return FORWARDED_STREAM if call.state.native else AnthropicStream(call.model, request_id)

    def error_body(self, exc: GatewayError, request_id: str) -> bytes:
        return anthropic_error_json(exc.status, exc.message, request_id)


class CountTokensRoute(Route):
    operation = Operation.COUNT_TOKENS

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        envelope = parse_envelope(body, counting=True)
        # Counting costs nothing: the worst case is one token, never the prompt's bytes.
        call = Call(envelope.model, body, max_tokens=1, prompt_bytes=0)
        call.native = native_call(scope, "/v1/messages/count_tokens")
        return call

    def whole(self, reply: Completed, call: Call, request_id: str) -> tuple[int, Headers, bytes]:
        return whole_answer(reply)

    def stream(self, call: Call, request_id: str) -> ForwardedStream:
        return FORWARDED_STREAM  # (count_tokens answers whole)

    def error_body(self, exc: GatewayError, request_id: str) -> bytes:
        return anthropic_error_json(exc.status, exc.message, request_id)


MESSAGES = MessagesRoute()
COUNT_TOKENS = CountTokensRoute()


@asgi(["/v1/messages", "/messages"], copy_scope=False)
async def messages(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, MESSAGES)


@asgi(["/v1/messages/count_tokens", "/messages/count_tokens"], copy_scope=False)
async def count_tokens(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, COUNT_TOKENS)
