"""A whole OpenAI chat completion -> a Responses API `response` object (translated deployments)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from gateway.errors import GatewayError
from gateway.responses.request import ResponsesRequest
from gateway.responses.wire import ChatUsage, chat_usage_to_responses, function_call_item, message_item, new_id, response_object
from llmgw.contracts import ErrorCode, ErrorType


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    id: str | None = None
    function: _Function | None = None


class _Message(msgspec.Struct):
    content: str | list[dict[str, Any]] | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] | None = None
    usage: ChatUsage | None = None


_decoder = msgspec.json.Decoder(_Completion)


def _text_of(message: _Message) -> str:
    if isinstance(message.content, list):  # a few OpenAI-compatible upstreams answer with parts
        return "".join(str(part.get("text", "")) for part in message.content if part.get("type") == "text")
    return message.content or message.refusal or ""


def chat_completion_to_response(body: bytes, request: ResponsesRequest, model: str, response_id: str) -> dict[str, Any]:
    """The `response` object for a chat.completion body; `model` is the name the client asked for.
    An unreadable body is the upstream's fault: 502."""
    try:
        completion = _decoder.decode(body)
    except msgspec.MsgspecError:
        raise GatewayError(502, "the upstream answer could not be read", ErrorType.API, ErrorCode.UPSTREAM_ERROR) from None
    choice = completion.choices[0] if completion.choices else _Choice()
    message = choice.message or _Message()
    output: list[dict[str, Any]] = []
    text = _text_of(message)
    if text:
        output.append(message_item(new_id("msg"), text))
    for call in message.tool_calls or ():
        function = call.function or _Function()
        output.append(function_call_item(new_id("fc"), call.id or new_id("call"), function.name or "", function.arguments or ""))
    return response_object(
        request,
        model,
        response_id,
        int(time.time()),
        status="completed",
        output=output,
        usage=chat_usage_to_responses(completion.usage),
        finish_reason=choice.finish_reason,
    )
