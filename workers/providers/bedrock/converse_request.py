"""OpenAI chat requests as Bedrock Converse requests.

Reference: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
(Message, ContentBlock, ImageBlock, ToolUseBlock, ToolResultBlock, SystemContentBlock,
InferenceConfiguration, ToolConfiguration, ToolChoice). Converse wants the conversation to
alternate user / assistant, so consecutive messages of one role (a run of tool results, a tool
result followed by the user's next words) are merged into one message's content blocks. The
JSON (REST) form of Converse carries image bytes as base64 text.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from workers.providers.errors import invalid_request
from workers.providers.openai_request import (
    ChatMessage,
    ChatRequest,
    Content,
    FunctionCall,
    ImageURL,
    NamedToolChoice,
    text_of,
)
from workers.providers.openai_request import (
    Tool as OpenAITool,
)

# ---- the Converse side -----------------------------------------------------------------------


class ImageSource(msgspec.Struct):
    bytes: str  # base64


class ImageBlock(msgspec.Struct):
    format: str
    source: ImageSource


class ToolUseBlock(msgspec.Struct):
    toolUseId: str
    name: str
    input: Any


class ToolResultContent(msgspec.Struct, omit_defaults=True):
    text: str | None = None


class ToolResultBlock(msgspec.Struct):
    toolUseId: str
    content: list[ToolResultContent]


class ContentBlock(msgspec.Struct, omit_defaults=True):
    """A union on the wire: exactly one member is set."""

    text: str | None = None
    image: ImageBlock | None = None
    toolUse: ToolUseBlock | None = None
    toolResult: ToolResultBlock | None = None


class ConverseMessage(msgspec.Struct):
    role: str
    content: list[ContentBlock]


class SystemBlock(msgspec.Struct):
    text: str


class InferenceConfig(msgspec.Struct, omit_defaults=True):
    maxTokens: int | None = None
    temperature: float | None = None
    topP: float | None = None
    stopSequences: list[str] | None = None


class InputSchema(msgspec.Struct):
    json: dict[str, Any]


class ToolSpec(msgspec.Struct, omit_defaults=True):
    name: str
    inputSchema: InputSchema
    description: str | None = None


class Tool(msgspec.Struct):
    toolSpec: ToolSpec


class ToolConfig(msgspec.Struct, omit_defaults=True):
    tools: list[Tool]
    toolChoice: dict[str, Any] | None = None


class ConverseRequest(msgspec.Struct, omit_defaults=True):
    messages: list[ConverseMessage]
    system: list[SystemBlock] | None = None
    inferenceConfig: InferenceConfig | None = None
    toolConfig: ToolConfig | None = None


_encoder = msgspec.json.Encoder()
_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def data_url_to_image(url: str, param: str) -> ImageBlock:
    """`data:image/png;base64,...` -> an ImageBlock. Bedrock fetches no URLs, so others are refused."""
    head, sep, data = url.partition(",")
    if not (url.startswith("data:image/") and sep and head.endswith(";base64")):
        raise invalid_request("Bedrock accepts images only as base64 data: URLs (data:image/png;base64,...)", param)
    fmt = _IMAGE_FORMATS.get(head[len("data:image/") : -len(";base64")].lower())
    if fmt is None:
        raise invalid_request("Bedrock accepts png, jpeg, gif and webp images", param)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request("the image's data: URL is not valid base64", param) from None
    return ImageBlock(fmt, ImageSource(data))


def _user_blocks(content: Content, param: str) -> list[ContentBlock]:
    if isinstance(content, str):
        return [ContentBlock(text=content)] if content else []
    blocks: list[ContentBlock] = []
    for j, part in enumerate(content or []):
        if part.type in ("text", None) and part.text:
            blocks.append(ContentBlock(text=part.text))
        elif part.type == "image_url" and part.image_url is not None:
            url = part.image_url.url if isinstance(part.image_url, ImageURL) else part.image_url
            blocks.append(ContentBlock(image=data_url_to_image(url or "", f"{param}.content[{j}].image_url")))
    return blocks


def _assistant_blocks(message: ChatMessage, param: str) -> list[ContentBlock]:
    text = text_of(message.content)
    blocks = [ContentBlock(text=text)] if text else []
    for j, call in enumerate(message.tool_calls or []):
        fn = call.function or FunctionCall()
        try:
            arguments = (
                msgspec.json.decode(fn.arguments) if isinstance(fn.arguments, str) and fn.arguments else fn.arguments or {}
            )
        except msgspec.DecodeError:
            raise invalid_request(
                "a tool call's arguments are not valid JSON", f"{param}.tool_calls[{j}].function.arguments"
            ) from None
        blocks.append(ContentBlock(toolUse=ToolUseBlock(call.id or "", fn.name or "", arguments)))
    return blocks


def openai_tools_to_tool_config(
    tools: list[OpenAITool] | None, tool_choice: str | NamedToolChoice | None, history_has_tools: bool
) -> ToolConfig | None:
    """tools + tool_choice -> toolConfig. Converse has no "none": its tools are left out unless
    the conversation already holds tool blocks (Bedrock then insists on a toolConfig)."""
    specs = [
        Tool(ToolSpec(t.function.name or "", InputSchema(t.function.parameters or _EMPTY_SCHEMA), t.function.description))
        for t in tools or []
        if t.function is not None
    ]
    if not specs or (tool_choice == "none" and not history_has_tools):
        return None
    choice: dict[str, Any] | None = None
    if tool_choice == "auto":
        choice = {"auto": {}}
    elif tool_choice == "required":
        choice = {"any": {}}
    elif isinstance(tool_choice, NamedToolChoice) and tool_choice.function is not None:
        choice = {"tool": {"name": tool_choice.function.name}}
    return ToolConfig(specs, choice)


def chat_request_to_converse(chat: ChatRequest, system_prompts: list[str]) -> ConverseRequest:
    """The client's OpenAI chat request as a Converse request; the policy's system prompts first."""
    system = [SystemBlock(p) for p in system_prompts if p]
    messages: list[ConverseMessage] = []
    history_has_tools = False
    for i, m in enumerate(chat.messages):
        param = f"messages[{i}]"
        if m.role in ("system", "developer"):
            text = text_of(m.content)
            if text:
                system.append(SystemBlock(text))
            continue
        if m.role == "assistant":
            role, blocks = "assistant", _assistant_blocks(m, param)
        elif m.role == "tool":
            result = ToolResultBlock(m.tool_call_id or "", [ToolResultContent(text=text_of(m.content))])
            role, blocks = "user", [ContentBlock(toolResult=result)]
        else:
            role, blocks = "user", _user_blocks(m.content, param)
        history_has_tools = history_has_tools or any(b.toolUse or b.toolResult for b in blocks)
        if messages and messages[-1].role == role:
            messages[-1].content.extend(blocks)
        else:
            messages.append(ConverseMessage(role, blocks))
    max_tokens = chat.max_completion_tokens if chat.max_completion_tokens is not None else chat.max_tokens
    stop = [chat.stop] if isinstance(chat.stop, str) else chat.stop
    inference = InferenceConfig(max_tokens, chat.temperature, chat.top_p, stop or None)
    return ConverseRequest(
        messages=messages,
        system=system or None,
        inferenceConfig=inference if inference != InferenceConfig() else None,
        toolConfig=openai_tools_to_tool_config(chat.tools, chat.tool_choice, history_has_tools),
    )


def encode_converse(request: ConverseRequest) -> bytes:
    return _encoder.encode(request)
