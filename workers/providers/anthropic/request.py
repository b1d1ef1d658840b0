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

from llmgw.contracts import ErrorCode, ErrorType
from workers.providers.anthropic.wire import DEFAULT_MAX_TOKENS
from workers.providers.base import UpstreamError

_input_decoder = msgspec.json.Decoder()


def _invalid(message: str, param: str | None = None) -> UpstreamError:
    return UpstreamError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def _text_block(part: dict[str, Any]) -> dict[str, Any] | None:
    """A text part as an Anthropic text block (keeping its `cache_control`); None when empty
    (Anthropic refuses empty text blocks)."""
    text = part.get("text")
    if not isinstance(text, str) or not text:
        return None
    block: dict[str, Any] = {"type": "text", "text": text}
    if part.get("cache_control") is not None:
        block["cache_control"] = part["cache_control"]
    return block


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    """The text of a system/developer/assistant message as text blocks (other parts are dropped)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") == "text":
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
            raise _invalid("image data URLs must be base64 (data:<media type>;base64,...)", "messages")
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise _invalid("image_url must be an http(s) or data: URL", "messages")


def _file_block(part: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI `file` part holding a PDF (file_data data: URL) as an Anthropic document block."""
    data = (part.get("file") or {}).get("file_data")
    if not isinstance(data, str) or not data.startswith("data:"):
        raise _invalid("file parts must carry file_data as a base64 data: URL", "messages")
    return {"type": "document", "source": image_url_to_source(data)}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        return []
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            block = _text_block(part)
            if block is not None:
                blocks.append(block)
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise _invalid("image_url.url must be a string", "messages")
            block = {"type": "image", "source": image_url_to_source(url)}
            if part.get("cache_control") is not None:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
        elif kind == "file":
            blocks.append(_file_block(part))
        else:
            raise _invalid(f"content parts of type {kind!r} are not supported by this model's provider", "messages")
    return blocks


def _tool_use(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _invalid("each tool call needs a function name", "messages")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = _input_decoder.decode(arguments) if isinstance(arguments, str) else arguments
    except msgspec.DecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _invalid(f"the arguments of tool call {call.get('id')!r} must be a JSON object", "messages")
    return {"type": "tool_use", "id": call.get("id") or "", "name": function["name"], "input": parsed}


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _text_blocks(message.get("content"))
    blocks.extend(_tool_use(call) for call in message.get("tool_calls") or ())
    return blocks


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid("tool messages need a tool_call_id", "messages")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif isinstance(content, list):
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


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _invalid("only function tools are supported by this model's provider", "tools")
        converted: dict[str, Any] = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            converted["description"] = function["description"]
        if tool.get("cache_control") is not None:
            converted["cache_control"] = tool["cache_control"]
        out.append(converted)
    return out


def tool_choice_to_anthropic(choice: Any, parallel: Any) -> dict[str, Any] | None:
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
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise _invalid("tool_choice must be auto, none, required or a named function", "tool_choice")
    if parallel is False and (out is None or out["type"] != "none"):
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def _max_tokens(body: dict[str, Any]) -> int:
    limits = [body[name] for name in ("max_completion_tokens", "max_tokens") if isinstance(body.get(name), int)]
    return min(limits) if limits else DEFAULT_MAX_TOKENS


def chat_request_to_anthropic(
    body: dict[str, Any], upstream_model: str, system_prompts: list[str], stream: bool
) -> dict[str, Any]:
    """The Anthropic Messages request for an OpenAI chat request; policy `system_prompts` come
    before the client's own system and developer messages."""
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise _invalid("n > 1 is not supported by this model's provider", "n")
    system = [{"type": "text", "text": p} for p in system_prompts if p]
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or ():
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content")))
        elif role == "user":
            _append(messages, "user", _user_blocks(message.get("content")))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(message))
        elif role == "tool":
            _append(messages, "user", [_tool_result(message)])
        else:
            raise _invalid(f"messages with role {role!r} are not supported by this model's provider", "messages")
    out: dict[str, Any] = {"model": upstream_model, "max_tokens": _max_tokens(body), "messages": messages}
    if system:
        out["system"] = system
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = stop
    for name in ("temperature", "top_p", "top_k"):  # (top_k: Anthropic's own, sent by some clients)
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    choice = tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and out.get("tools"):
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    if stream:
        out["stream"] = True
    return out
