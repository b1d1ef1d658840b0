"""A whole OpenAI chat completion -> an Anthropic `message` object."""

from __future__ import annotations

import os
from typing import Any

import msgspec

from gateway.anthropic_messages.wire import parse_arguments, stop_reason, usage_to_anthropic
from gateway.chat_answers import Choice, Completion, Function, Message, completion_decoder
from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType

_encoder = msgspec.json.Encoder()


def message_id(request_id: str) -> str:
    """The id of a message the gateway writes (a translated answer): its request id's, so the
    usage row, which records it, is found by it."""
    return "msg_" + request_id.removeprefix("req-")


def message_id_for(completion_id: str | None) -> str:
    """An Anthropic-looking message id ("msg_...") derived from the OpenAI completion id."""
    if not completion_id:
        return "msg_" + os.urandom(12).hex()
    return "msg_" + completion_id.removeprefix("chatcmpl-")


def tool_use_id() -> str:
    """An id for a tool call the upstream sent without one (the client needs it for its result)."""
    return "toolu_" + os.urandom(12).hex()


def _text_of(message: Message) -> str:
    if isinstance(message.content, list):  # a few OpenAI-compatible upstreams answer with parts
        return "".join(str(part.get("text", "")) for part in message.content if part.get("type") == "text")
    return message.content or message.refusal or ""


def completion_to_message(completion: Completion, model: str, message_id: str | None = None) -> dict[str, Any]:
    """The Anthropic message dict for a decoded completion (see `chat_completion_to_message`);
    its id is `message_id`, else one derived from the completion's."""
    choice = completion.choices[0] if completion.choices else Choice()
    message = choice.message or Message()
    content: list[dict[str, Any]] = []
    text = _text_of(message)
    if text:
        content.append({"type": "text", "text": text})
    for call in message.tool_calls or ():
        function = call.function or Function()
        content.append(
            {
                "type": "tool_use",
                "id": call.id or tool_use_id(),
                "name": function.name or "",
                "input": parse_arguments(function.arguments),
            }
        )
    return {
        "id": message_id or message_id_for(completion.id),
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": model,
        "stop_reason": stop_reason(choice.finish_reason, bool(message.tool_calls)),
        "stop_sequence": None,
        "usage": usage_to_anthropic(completion.usage),
    }


def chat_completion_to_message(body: bytes, model: str, message_id: str | None = None) -> bytes:
    """The Anthropic message JSON for an OpenAI chat.completion body; `model` is the name the
    client asked for (not the upstream's), `message_id` the answer's id (see `completion_to_message`).
    An unreadable body is the upstream's fault: 502."""
    try:
        completion = completion_decoder.decode(body)
    except msgspec.MsgspecError:
        raise GatewayError(502, "the upstream answer could not be read", ErrorType.API, ErrorCode.UPSTREAM_ERROR) from None
    return _encoder.encode(completion_to_message(completion, model, message_id))
