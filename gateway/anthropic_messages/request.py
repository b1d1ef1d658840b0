"""The Anthropic Messages request (https://docs.anthropic.com/en/api/messages), as the edge reads it.

Two readings. `parse_envelope` checks what every deployment needs (the model, `max_tokens`, the
messages and their roles) and is all an Anthropic deployment's request gets: it is forwarded as it
came, so every field and block Anthropic knows reaches it. `parse_messages_request` reads the whole
request for the translation to OpenAI chat completions: only the fields the conversion uses are
declared; anything else (cache_control, thinking, context_management, output_config, service_tier,
...) does not change what an OpenAI-family model answers and is ignored. A block or tool the
translation has no place for is refused, naming it. Errors are worded as Anthropic words them
(`messages.0.role: ...`, the field's dotted path first); `param` keeps the JSON path
(`messages[0].role`) for the gateway's own logs and usage rows.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from gateway.errors import GatewayError
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


class ThinkingBlock(msgspec.Struct, tag="thinking", **_BLOCK):
    """Sent back by clients that replay a thinking answer; dropped (OpenAI has no such part)."""

    thinking: str = ""
    signature: str | None = None


class RedactedThinkingBlock(msgspec.Struct, tag="redacted_thinking", **_BLOCK):
    data: str = ""


class ToolReferenceBlock(msgspec.Struct, tag="tool_reference", **_BLOCK):
    """A tool search's result (a tool_result's content): which deferred tool it found; dropped."""

    tool_name: str = ""


class ToolResultBlock(msgspec.Struct, tag="tool_result", **_BLOCK):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | ToolReferenceBlock] | None = None
    is_error: bool = False


ContentBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock


class Message(msgspec.Struct, kw_only=True):
    """A turn; `system` is the newer beta's system message inside `messages` (at its position)."""

    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


class Tool(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None  # None or "custom" for client tools; server tools have a versioned type
    defer_loading: bool = False  # (tool search) not shown to the model until a search finds it


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


class CountTokensRequest(msgspec.Struct, kw_only=True):
    """`POST /v1/messages/count_tokens`: what a Messages request sends, without `max_tokens`."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None


class MessagesRequest(CountTokensRequest, kw_only=True):
    max_tokens: Annotated[int, msgspec.Meta(ge=1)]
    stop_sequences: list[str] | None = None
    temperature: Unit | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None  # accepted, ignored: OpenAI has no top_k
    stream: bool = False
    metadata: Metadata | None = None


# -- the envelope: what every deployment's request is checked for ------------------------------


class EnvelopeMessage(msgspec.Struct, kw_only=True):
    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]]


class Envelope(msgspec.Struct, kw_only=True):
    """A Messages (or count_tokens) request as forwarded to an Anthropic deployment: its blocks are
    Anthropic's to check. `max_tokens` is checked by `parse_envelope` (count_tokens has none)."""

    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: Annotated[list[EnvelopeMessage], msgspec.Meta(min_length=1)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stream: bool = False
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None


_decoder = msgspec.json.Decoder(MessagesRequest)
_envelope_decoder = msgspec.json.Decoder(Envelope)

# Which block types each role may send (thinking blocks are tolerated everywhere and dropped).
_ALLOWED = {
    "user": (TextBlock, ImageBlock, ToolResultBlock, ThinkingBlock, RedactedThinkingBlock),
    "assistant": (TextBlock, ToolUseBlock, ThinkingBlock, RedactedThinkingBlock),
    "system": (TextBlock,),
}
_TRANSLATED_BLOCKS = frozenset({"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"})
_TRANSLATED_RESULT_PARTS = frozenset({"text", "image", "tool_reference"})
_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`$")


def dotted(param: str) -> str:
    """A JSON path as Anthropic writes it in its errors: `messages[0].role` -> `messages.0.role`."""
    return re.sub(r"\[([^\]]*)\]", r".\1", param)


def _bad(message: str, param: str | None) -> GatewayError:
    """A 400 worded as Anthropic's own: the field's dotted path, then what is wrong with it."""
    text = f"{dotted(param)}: {message}" if param else message
    return GatewayError(400, text, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def _invalid(exc: msgspec.MsgspecError) -> GatewayError:
    """msgspec's complaint in Anthropic's words (`max_tokens: Field required`)."""
    if not isinstance(exc, msgspec.ValidationError):
        return _bad(f"There was an error parsing the body of your request: {exc}", None)
    text = str(exc)
    at = _MSGSPEC_PATH.search(text)
    path, detail = (at.group(1), text[: at.start()]) if at else ("", text)
    missing = _MISSING.match(detail)
    if missing:
        path, detail = (f"{path}.{missing.group(1)}" if path else missing.group(1)), "Field required"
    return _bad(detail, path or None)


def _check(request: MessagesRequest) -> None:
    """What the types alone cannot say: which blocks a role may hold, which tools are convertible."""
    for i, message in enumerate(request.messages):
        if isinstance(message.content, str):
            continue
        for j, block in enumerate(message.content):
            if not isinstance(block, _ALLOWED[message.role]):
                kind = block.__struct_config__.tag
                article = "an" if message.role == "assistant" else "a"
                raise _bad(f"{article} {message.role} message cannot hold a `{kind}` block", f"messages[{i}].content[{j}].type")
    for i, tool in enumerate(request.tools or ()):
        if tool.type not in (None, "custom"):
            raise _bad(
                f"server tool `{tool.type}` cannot be used with `{request.model}`: only an Anthropic deployment runs server tools",
                f"tools[{i}].type",
            )
        if tool.input_schema is None:
            raise _bad("Field required", f"tools[{i}].input_schema")


def untranslatable(envelope: Envelope) -> GatewayError | None:
    """The refusal for a block the translation to chat completions has no place for (documents,
    server tool results, search results, ...): they reach only an Anthropic deployment."""
    for i, message in enumerate(envelope.messages):
        if isinstance(message.content, str):
            continue
        for j, block in enumerate(message.content):
            kind = block.get("type")
            if not isinstance(kind, str):
                return _bad("Field required", f"messages[{i}].content[{j}].type")
            if kind not in _TRANSLATED_BLOCKS:
                return _cannot(kind, envelope.model, f"messages[{i}].content[{j}].type")
            parts = block.get("content") if kind == "tool_result" else None
            for k, part in enumerate(parts if isinstance(parts, list) else ()):
                part_kind = part.get("type") if isinstance(part, dict) else None
                if isinstance(part_kind, str) and part_kind not in _TRANSLATED_RESULT_PARTS:
                    return _cannot(part_kind, envelope.model, f"messages[{i}].content[{j}].content[{k}].type")
    return None


def _cannot(kind: str, model: str, param: str) -> GatewayError:
    return _bad(
        f"`{kind}` blocks cannot be sent to `{model}`: only an Anthropic deployment takes them, and this model is not one",
        param,
    )


def parse_envelope(body: bytes, counting: bool = False) -> Envelope:
    """Decode the request's envelope (model, max_tokens unless `counting`, messages and roles);
    a GatewayError(400), worded as Anthropic words it, names the bad field."""
    try:
        envelope = _envelope_decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from None
    if envelope.max_tokens is None and not counting:
        raise _bad("Field required", "max_tokens")
    return envelope


def parse_messages_request(body: bytes, envelope: Envelope | None = None) -> MessagesRequest:
    """Decode and validate a `POST /v1/messages` body for its translation to chat completions;
    a GatewayError(400) names the bad field (`envelope`: the body's, when already read)."""
    refusal = untranslatable(envelope if envelope is not None else parse_envelope(body))
    if refusal is not None:
        raise refusal
    try:
        request = _decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise _invalid(exc) from None
    _check(request)
    return request
