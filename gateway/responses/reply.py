"""A whole OpenAI chat completion -> a Responses API `response` object (translated deployments)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from gateway.chat_answers import Choice, Function, Message, completion_decoder
from gateway.errors import GatewayError
from gateway.responses.request import ResponsesRequest
from gateway.responses.wire import chat_usage_to_responses, function_call_item, message_item, new_id, response_object
from llmgw.contracts import ErrorCode, ErrorType


def _text_of(message: Message) -> str:
    if isinstance(message.content, list):  # a few OpenAI-compatible upstreams answer with parts
        return "".join(str(part.get("text", "")) for part in message.content if part.get("type") == "text")
    return message.content or message.refusal or ""


def chat_completion_to_response(body: bytes, request: ResponsesRequest, model: str, response_id: str) -> dict[str, Any]:
    """The `response` object for a chat.completion body; `model` is the name the client asked for.
    An unreadable body is the upstream's fault: 502."""
    try:
        completion = completion_decoder.decode(body)
    except msgspec.MsgspecError:
        raise GatewayError(502, "the upstream answer could not be read", ErrorType.API, ErrorCode.UPSTREAM_ERROR) from None
    choice = completion.choices[0] if completion.choices else Choice()
    message = choice.message or Message()
    output: list[dict[str, Any]] = []
    text = _text_of(message)
    if text:
        output.append(message_item(new_id("msg"), text))
    for call in message.tool_calls or ():
        function = call.function or Function()
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
