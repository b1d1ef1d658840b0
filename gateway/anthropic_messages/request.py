"""The Anthropic Messages request (https://docs.anthropic.com/en/api/messages), as the edge reads it.

Only the fields the conversion to OpenAI chat completions uses are declared; anything else the
client sends (cache_control, thinking, service_tier, ...) is ignored, because the OpenAI format
has nowhere to carry it. Validation errors reuse the OpenAI routes' 400 helper, so both edges
name the offending field the same way (`param` is the JSON path, e.g. `messages[0].role`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gateway.errors import GatewayError
from gateway.schemas import _invalid
from llmgw.contracts import ErrorCode, ErrorType

_BLOCK = {"tag_field": "type", "kw_only": True}


class TextBlock(msgspec.Struct, tag="text", **_BLOCK):
    text: str


class Base64Source(msgspec.Struct, tag="base64", **_BLOCK):
    media_type: str
    data: str


class UrlSource(msgspec.Struct, tag="url", **_BLOCK):
    url: str


class ImageBlock(msgspec.Struct, tag="image", **_BLOCK):
    source: Base64Source | UrlSource


class ToolUseBlock(msgspec.Struct, tag="tool_use", **_BLOCK):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(msgspec.Struct, tag="tool_result", **_BLOCK):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool = False


class ThinkingBlock(msgspec.Struct, tag="thinking", **_BLOCK):
    """Sent back by clients that replay a thinking answer; dropped (OpenAI has no such part)."""

    thinking: str = ""
    signature: str | None = None


class RedactedThinkingBlock(msgspec.Struct, tag="redacted_thinking", **_BLOCK):
    data: str = ""


ContentBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock


class Message(msgspec.Struct, kw_only=True):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class Tool(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None  # None or "custom" for client tools; server tools have a versioned type


class ToolChoiceAuto(msgspec.Struct, tag="auto", **_BLOCK):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(msgspec.Struct, tag="any", **_BLOCK):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(msgspec.Struct, tag="tool", **_BLOCK):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(msgspec.Struct, tag="none", **_BLOCK):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class Metadata(msgspec.Struct, kw_only=True):
    user_id: str | None = None


Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]


class MessagesRequest(msgspec.Struct, kw_only=True):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1)]
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: Unit | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None  # accepted, ignored: OpenAI has no top_k
    stream: bool = False
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None


_decoder = msgspec.json.Decoder(MessagesRequest)

# Which block types each role may send (thinking blocks are tolerated everywhere and dropped).
_ALLOWED = {
    "user": (TextBlock, ImageBlock, ToolResultBlock, ThinkingBlock, RedactedThinkingBlock),
    "assistant": (TextBlock, ToolUseBlock, ThinkingBlock, RedactedThinkingBlock),
}


def _bad(message: str, param: str) -> GatewayError:
    """A 400 worded like msgspec's own (and so like the OpenAI routes'): it ends with the field's path."""
    return GatewayError(
        400, f"Invalid request: {message} - at `$.{param}`", ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param
    )


def _check(request: MessagesRequest) -> None:
    """What the types alone cannot say: which blocks a role may hold, which tools are convertible."""
    for i, message in enumerate(request.messages):
        if isinstance(message.content, str):
            continue
        for j, block in enumerate(message.content):
            if not isinstance(block, _ALLOWED[message.role]):
                kind = block.__struct_config__.tag
                raise _bad(
                    f"an {message.role} message cannot hold a `{kind}` block"
                    if message.role == "assistant"
                    else f"a user message cannot hold a `{kind}` block",
                    f"messages[{i}].content[{j}].type",
                )
    for i, tool in enumerate(request.tools or ()):
        if tool.type not in (None, "custom"):
            raise _bad(f"server tool type `{tool.type}` is not supported by this gateway", f"tools[{i}].type")
        if tool.input_schema is None:
            raise _bad("Object missing required field `input_schema`", f"tools[{i}].input_schema")


def parse_messages_request(body: bytes) -> MessagesRequest:
    """Decode and validate a `POST /v1/messages` body; a GatewayError(400) names the bad field."""
    try:
        request = _decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from None
    _check(request)
    return request
