"""OpenAI chat request -> Anthropic Messages request (`chat_request_to_anthropic`).

The two formats differ where Anthropic is stricter: system prompts are a top-level field, not
messages; roles must alternate (consecutive same-role messages are merged); tool results are
`tool_result` blocks in a user message, listed before any text; tool calls are `tool_use` blocks
with their input as a JSON object, not a string; and `max_tokens` is required.
Reference: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from typing import Any

import msgspec

from workers.providers.anthropic.wire import DEFAULT_MAX_TOKENS
from workers.providers.errors import invalid_request
from workers.providers.openai_request import (
    ChatMessage,
    ChatRequest,
    Content,
    ContentPart,
    ImageURL,
    NamedToolChoice,
    Tool,
    ToolCall,
)

_input_decoder = msgspec.json.Decoder()


def _text_block(part: ContentPart) -> dict[str, Any] | None:
    """A text part as an Anthropic text block (keeping its `cache_control`); None when empty
    (Anthropic refuses empty text blocks)."""
    if not part.text:
        return None
    block: dict[str, Any] = {"type": "text", "text": part.text}
    if part.cache_control is not None:
        block["cache_control"] = part.cache_control
    return block


def _text_blocks(content: Content) -> list[dict[str, Any]]:
    """The text of a system/developer/assistant message as text blocks (other parts are dropped)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or ():
        if part.type == "text":
            block = _text_block(part)
            if block is not None:
                blocks.append(block)
    return blocks


def image_url_to_source(url: str) -> dict[str, Any]:
    """An OpenAI image URL as an Anthropic image source: data: URLs as base64, others by URL."""
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise invalid_request("image data URLs must be base64 (data:<media type>;base64,...)", "messages")
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise invalid_request("image_url must be an http(s) or data: URL", "messages")


def _file_block(part: ContentPart) -> dict[str, Any]:
    """An OpenAI `file` part holding a PDF (file_data data: URL) as an Anthropic document block."""
    data = part.file.file_data if part.file is not None else None
    if not isinstance(data, str) or not data.startswith("data:"):
        raise invalid_request("file parts must carry file_data as a base64 data: URL", "messages")
    return {"type": "document", "source": image_url_to_source(data)}


def _user_blocks(content: Content) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content or ():
        if part.type == "text":
            block = _text_block(part)
            if block is not None:
                blocks.append(block)
        elif part.type == "image_url":
            url = part.image_url.url if isinstance(part.image_url, ImageURL) else part.image_url
            if not isinstance(url, str):
                raise invalid_request("image_url.url must be a string", "messages")
            block = {"type": "image", "source": image_url_to_source(url)}
            if part.cache_control is not None:
                block["cache_control"] = part.cache_control
            blocks.append(block)
        elif part.type == "file":
            blocks.append(_file_block(part))
        else:
            raise invalid_request(f"content parts of type {part.type!r} are not supported by this model's provider", "messages")
    return blocks


def _tool_use(call: ToolCall) -> dict[str, Any]:
    function = call.function
    if function is None or not isinstance(function.name, str):
        raise invalid_request("each tool call needs a function name", "messages")
    arguments = function.arguments or "{}"
    try:
        parsed = _input_decoder.decode(arguments) if isinstance(arguments, str) else arguments
    except msgspec.DecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid_request(f"the arguments of tool call {call.id!r} must be a JSON object", "messages")
    return {"type": "tool_use", "id": call.id or "", "name": function.name, "input": parsed}


def _assistant_blocks(message: ChatMessage) -> list[dict[str, Any]]:
    blocks = _text_blocks(message.content)
    blocks.extend(_tool_use(call) for call in message.tool_calls or ())
    return blocks


def _tool_result(message: ChatMessage) -> dict[str, Any]:
    if not message.tool_call_id:
        raise invalid_request("tool messages need a tool_call_id", "messages")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = message.content
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content:
        parts = _user_blocks(content)
        if parts:
            block["content"] = parts
    return block


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add a turn, merged into the previous one when it has the same role (Anthropic requires
    alternating roles); in a user turn, tool results go before any other content."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        merged = messages[-1]["content"] + blocks
    else:
        merged = blocks
        messages.append({"role": role, "content": merged})
    if role == "user":
        merged.sort(key=lambda b: b["type"] != "tool_result")  # stable: order kept within each kind
    messages[-1]["content"] = merged


def _tools(tools: list[Tool]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        function = tool.function if tool.type == "function" else None
        if function is None or not isinstance(function.name, str):
            raise invalid_request("only function tools are supported by this model's provider", "tools")
        converted: dict[str, Any] = {
            "name": function.name,
            "input_schema": function.parameters or {"type": "object", "properties": {}},
        }
        if function.description:
            converted["description"] = function.description
        if tool.cache_control is not None:
            converted["cache_control"] = tool.cache_control
        out.append(converted)
    return out


def tool_choice_to_anthropic(choice: str | NamedToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    """OpenAI tool_choice (+ parallel_tool_calls) as Anthropic's: required -> any, named -> tool."""
    out: dict[str, Any] | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        out = {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, NamedToolChoice) and choice.function is not None and isinstance(choice.function.name, str):
        out = {"type": "tool", "name": choice.function.name}
    else:
        raise invalid_request("tool_choice must be auto, none, required or a named function", "tool_choice")
    if parallel is False and (out is None or out["type"] != "none"):
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def chat_request_to_anthropic(chat: ChatRequest, upstream_model: str, system_prompts: list[str], stream: bool) -> dict[str, Any]:
    """The Anthropic Messages request for an OpenAI chat request; policy `system_prompts` come
    before the client's own system and developer messages."""
    if chat.n is not None and chat.n > 1:
        raise invalid_request("n > 1 is not supported by this model's provider", "n")
    system = [{"type": "text", "text": p} for p in system_prompts if p]
    messages: list[dict[str, Any]] = []
    for message in chat.messages:
        role = message.role
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.content))
        elif role == "user":
            _append(messages, "user", _user_blocks(message.content))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(message))
        elif role == "tool":
            _append(messages, "user", [_tool_result(message)])
        else:
            raise invalid_request(f"messages with role {role!r} are not supported by this model's provider", "messages")
    limit = chat.completion_limit()
    out: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": limit if limit is not None else DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        out["system"] = system
    if isinstance(chat.stop, str):
        out["stop_sequences"] = [chat.stop]
    elif chat.stop:
        out["stop_sequences"] = chat.stop
    for name, value in (("temperature", chat.temperature), ("top_p", chat.top_p), ("top_k", chat.top_k)):
        if value is not None:  # (top_k: Anthropic's own, sent by some clients)
            out[name] = value
    if chat.tools:
        out["tools"] = _tools(chat.tools)
    choice = tool_choice_to_anthropic(chat.tool_choice, chat.parallel_tool_calls)
    if choice is not None and out.get("tools"):
        out["tool_choice"] = choice
    if chat.user:
        out["metadata"] = {"user_id": chat.user}
    if stream:
        out["stream"] = True
    return out
