"""Validation of the OpenAI-compatible request bodies (the fields the gateway relies on).

Unknown fields are allowed and forwarded untouched (tools, response_format, ...); the body the
worker sends upstream is the client's own bytes, with only the model name rewritten.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

import msgspec

from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType

T = TypeVar("T")

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(msgspec.Struct):
    role: Role
    content: str | list[dict] | None = None
    name: str | None = None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]  # (bounded: token counts are priced as floats)


class ChatCompletionRequest(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    n: PositiveInt | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    user: str | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None  # seconds (the gateway's; not sent upstream)
    store: bool | None = None  # kept by the gateway (gateway/stored_chat); not sent upstream


class EmbeddingsRequest(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    input: str | list[str | int | list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: PositiveInt | None = None
    user: str | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None


_chat_decoder = msgspec.json.Decoder(ChatCompletionRequest)
_embeddings_decoder = msgspec.json.Decoder(EmbeddingsRequest)
_PATH = re.compile(r"at `\$\.?([^`]*)`")


def _invalid(exc: msgspec.MsgspecError) -> GatewayError:
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        match = _PATH.search(text)
        missing = re.search(r"missing required field `([^`]+)`", text)
        param = missing.group(1) if missing else (match.group(1) if match else None)
        if param and match and missing:
            param = f"{match.group(1)}.{param}" if match.group(1) else param
        return GatewayError(400, f"Invalid request: {text}", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param or None)
    return GatewayError(400, "Invalid JSON body: " + text, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST)


def decoded(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """`body` decoded by `decoder`: a 400 naming the field when it does not fit."""
    try:
        return decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from None


def parse_chat(body: bytes) -> ChatCompletionRequest:
    try:
        return _chat_decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from None


def parse_embeddings(body: bytes) -> EmbeddingsRequest:
    try:
        request = _embeddings_decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from None
    if request.input == "" or request.input == []:
        raise GatewayError(
            400, "Invalid request: `input` must not be empty", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, "input"
        )
    return request
