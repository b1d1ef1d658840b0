"""`POST /v1/messages`: the Anthropic Messages API for any configured model.

The body is turned into the gateway's OpenAI chat-completions body and goes through the pipeline
as a chat request; answers come back in Anthropic's wire format (a whole `message`, or its stream
of events) and errors in Anthropic's error shape, so an Anthropic SDK client can use an OpenAI,
Gemini or self-hosted model.
"""

from __future__ import annotations

from litestar.handlers import asgi

from gateway.anthropic_messages.reply import chat_completion_to_message
from gateway.anthropic_messages.request import parse_messages_request
from gateway.anthropic_messages.stream import StreamTranslator
from gateway.anthropic_messages.to_chat import messages_to_chat_body
from gateway.anthropic_messages.wire import anthropic_error_json, anthropic_error_type
from gateway.asgi_io import SSE_HEADERS, Receive, Scope, Send
from gateway.edge import Edge
from gateway.errors import GatewayError
from gateway.openai_api import CHAT
from gateway.pipeline import pipeline_of
from gateway.routes import Call, Headers, Incoming, Route
from llmgw.contracts import Chunks, Completed, Operation


class AnthropicStream:
    """The worker's OpenAI chunks as Anthropic stream events."""

    __slots__ = ("translator",)

    def __init__(self, model: str, request_id: str) -> None:
        self.translator = StreamTranslator(model, "msg_" + request_id.removeprefix("req-"))

    def head(self, first: Chunks) -> tuple[int, Headers]:
        return 200, list(SSE_HEADERS)

    def data(self, chunks: list[bytes]) -> bytes:
        return b"".join([self.translator.feed(d) for d in chunks])

    def end(self) -> bytes:
        return self.translator.finish()

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes:
        return self.translator.error_event(message, anthropic_error_type(status))


class MessagesRoute(Route):
    operation = Operation.CHAT

    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call:
        return CHAT.parse(scope, incoming, messages_to_chat_body(parse_messages_request(body)), edge)

    def whole(self, reply: Completed, call: Call, request_id: str) -> tuple[int, Headers, bytes]:
        return 200, [(b"content-type", b"application/json")], chat_completion_to_message(reply.body, call.model)

    def stream(self, call: Call, request_id: str) -> AnthropicStream:
        return AnthropicStream(call.model, request_id)

    def error_body(self, exc: GatewayError, request_id: str) -> bytes:
        return anthropic_error_json(exc.status, exc.message, request_id)


MESSAGES = MessagesRoute()


@asgi(["/v1/messages", "/messages"], copy_scope=False)
async def messages(scope: Scope, receive: Receive, send: Send) -> None:
    await pipeline_of(scope).run(scope, receive, send, MESSAGES)
