"""OpenAI requests -> Cohere v2 requests (chat and embed).

Reference: https://docs.cohere.com/reference/chat and https://docs.cohere.com/reference/embed.
Cohere v2 messages are close to OpenAI's: the roles system / user / assistant / tool, assistant
`tool_calls` with `function.arguments` as a JSON string, tool results by `tool_call_id`, and
tools in the same JSON-schema shape. What differs: `top_p` is `p`, `stop` is `stop_sequences`,
`tool_choice` is `REQUIRED` / `NONE` (no choice means auto), `developer` messages are system
messages, and there is no `n`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from workers.providers.errors import invalid_request
from workers.providers.openai_request import (
    ChatMessage,
    ChatRequest,
    Content,
    EmbeddingsRequest,
    ImageURL,
    NamedToolChoice,
    ResponseFormat,
    Tool,
    ToolCall,
)

DEFAULT_INPUT_TYPE = "search_document"  # embed v3+ models require one; documents are the usual case
_encoder = msgspec.json.Encoder()


def _text_parts(content: Content, role: str) -> str | list[dict[str, Any]]:
    """System, assistant and tool content: a string, or its text parts."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content or ():
        if part.type != "text":
            raise invalid_request(f"Cohere accepts only text content in {role} messages", "messages")
        parts.append({"type": "text", "text": part.text or ""})
    return parts


def _user_content(content: Content) -> str | list[dict[str, Any]]:
    """User content: text and `image_url` parts, which Cohere v2 takes in OpenAI's own shape."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content or ():
        if part.type == "text":
            parts.append({"type": "text", "text": part.text or ""})
        elif part.type == "image_url" and isinstance(part.image_url, ImageURL):
            parts.append({"type": "image_url", "image_url": {"url": part.image_url.url}})
        else:
            raise invalid_request(f"Cohere does not accept `{part.type}` content parts", "messages")
    return parts


def _tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        function = call.function
        arguments = function.arguments if function is not None else None
        if isinstance(arguments, dict):
            arguments = _encoder.encode(arguments).decode()  # Cohere takes the JSON text, as OpenAI does
        out.append(
            {
                "id": call.id,
                "type": "function",
                "function": {"name": function.name if function is not None else None, "arguments": arguments or "{}"},
            }
        )
    return out


def openai_messages_to_cohere(messages: list[ChatMessage], system_prompts: list[str]) -> list[dict[str, Any]]:
    """The policy's system prompts first, then the client's messages role by role."""
    out: list[dict[str, Any]] = [{"role": "system", "content": p} for p in system_prompts]
    for m in messages:
        role, content = m.role, m.content
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text_parts(content, "system")})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(content)})
        elif role == "assistant":
            turn: dict[str, Any] = {"role": "assistant"}
            if content:
                turn["content"] = _text_parts(content, "assistant")
            if m.tool_calls:
                turn["tool_calls"] = _tool_calls(m.tool_calls)
            out.append(turn)
        elif role in ("tool", "function"):  # `function`: OpenAI's legacy tool result, by name
            call_id = m.tool_call_id if role == "tool" else m.name
            out.append({"role": "tool", "tool_call_id": call_id, "content": _text_parts(content or "", "tool")})
        else:
            raise invalid_request(f"Cohere has no `{role}` role", "messages")
    return out


def _tools(tools: list[Tool]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        function = tool.function if tool.type == "function" else None
        if function is None or not function.name:
            raise invalid_request("Cohere accepts only function tools with a name", "tools")
        spec: dict[str, Any] = {"name": function.name}
        if function.description is not None:
            spec["description"] = function.description
        if function.parameters is not None:
            spec["parameters"] = function.parameters
        out.append({"type": "function", "function": spec})
    return out


def _apply_tool_choice(choice: str | NamedToolChoice | None, out: dict[str, Any]) -> None:
    """OpenAI `tool_choice` on a Cohere request: `required` -> REQUIRED, `none` -> NONE, one named
    function -> REQUIRED with only that tool offered; `auto` is Cohere's default."""
    if choice == "required":
        out["tool_choice"] = "REQUIRED"
    elif choice == "none":
        out["tool_choice"] = "NONE"
    elif isinstance(choice, NamedToolChoice):
        name = choice.function.name if choice.function is not None else None
        out["tools"] = [t for t in out.get("tools", []) if t["function"]["name"] == name]
        if not out["tools"]:
            raise invalid_request(f"tool_choice names `{name}`, which is not among the tools", "tool_choice")
        out["tool_choice"] = "REQUIRED"


def _response_format(value: ResponseFormat | None) -> dict[str, Any] | None:
    if value is None or value.type in (None, "text"):
        return None
    if value.type == "json_object":
        return {"type": "json_object"}
    if value.type == "json_schema":
        schema = value.json_schema.schema if value.json_schema is not None else None
        return {"type": "json_object", **({"json_schema": schema} if schema is not None else {})}
    raise invalid_request(f"Cohere does not support response_format `{value.type}`", "response_format")


def chat_request_to_cohere(chat: ChatRequest, upstream_model: str, system_prompts: list[str], stream: bool) -> dict[str, Any]:
    """An OpenAI chat.completions request as a Cohere `POST /v2/chat` body."""
    if (chat.n or 1) > 1:
        raise invalid_request("Cohere answers one choice per request: n must be 1", "n")
    out: dict[str, Any] = {
        "model": upstream_model,
        "messages": openai_messages_to_cohere(chat.messages, system_prompts),
        "stream": stream,
    }
    if chat.tools:
        out["tools"] = _tools(chat.tools)
        _apply_tool_choice(chat.tool_choice, out)
    max_tokens = chat.max_completion_tokens or chat.max_tokens
    if max_tokens:
        out["max_tokens"] = max_tokens
    sampling = (
        ("temperature", chat.temperature),
        ("p", chat.top_p),
        ("seed", chat.seed),
        ("frequency_penalty", chat.frequency_penalty),
        ("presence_penalty", chat.presence_penalty),
    )
    for cohere_name, value in sampling:
        if value is not None:
            out[cohere_name] = value
    if chat.stop:
        out["stop_sequences"] = [chat.stop] if isinstance(chat.stop, str) else list(chat.stop)
    response_format = _response_format(chat.response_format)
    if response_format is not None:
        out["response_format"] = response_format
    return out


def embeddings_request_to_cohere(request: EmbeddingsRequest, upstream_model: str) -> dict[str, Any]:
    """An OpenAI embeddings request as a Cohere `POST /v2/embed` body: float embeddings of
    documents (a client may choose another `input_type`, e.g. `search_query`, in the body)."""
    texts = request.texts()
    if texts is None:
        raise invalid_request("Cohere embeds text: `input` must be a string or an array of strings", "input")
    out: dict[str, Any] = {
        "model": upstream_model,
        "texts": texts,
        "input_type": request.input_type or DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    }
    if request.dimensions:
        out["output_dimension"] = request.dimensions
    return out
