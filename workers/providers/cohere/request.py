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

from llmgw.contracts import ErrorCode, ErrorType
from workers.providers.base import UpstreamError

DEFAULT_INPUT_TYPE = "search_document"  # embed v3+ models require one; documents are the usual case


def _invalid(message: str, param: str | None = None) -> UpstreamError:
    return UpstreamError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def _text_parts(content: Any, role: str) -> str | list[dict[str, Any]]:
    """System, assistant and tool content: a string, or its text parts."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content or []:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        else:
            raise _invalid(f"Cohere accepts only text content in {role} messages", "messages")
    return parts


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    """User content: text and `image_url` parts, which Cohere v2 takes in OpenAI's own shape."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"].get("url")}})
        else:
            raise _invalid(f"Cohere does not accept `{kind}` content parts", "messages")
    return parts


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in calls or []:
        if not isinstance(call, dict):
            raise _invalid("each tool call must be an object", "messages")
        function = call.get("function") or {}
        out.append(
            {
                "id": call.get("id"),
                "type": "function",
                "function": {"name": function.get("name"), "arguments": function.get("arguments") or "{}"},
            }
        )
    return out


def openai_messages_to_cohere(messages: list[Any], system_prompts: list[str]) -> list[dict[str, Any]]:
    """The policy's system prompts first, then the client's messages role by role."""
    out: list[dict[str, Any]] = [{"role": "system", "content": p} for p in system_prompts]
    for m in messages:
        if not isinstance(m, dict):
            raise _invalid("each message must be an object", "messages")
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text_parts(content, "system")})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(content)})
        elif role == "assistant":
            turn: dict[str, Any] = {"role": "assistant"}
            if content:
                turn["content"] = _text_parts(content, "assistant")
            if m.get("tool_calls"):
                turn["tool_calls"] = _tool_calls(m["tool_calls"])
            out.append(turn)
        elif role in ("tool", "function"):  # `function`: OpenAI's legacy tool result, by name
            call_id = m.get("tool_call_id") if role == "tool" else m.get("name")
            out.append({"role": "tool", "tool_call_id": call_id, "content": _text_parts(content or "", "tool")})
        else:
            raise _invalid(f"Cohere has no `{role}` role", "messages")
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(function, dict) or not function.get("name"):
            raise _invalid("Cohere accepts only function tools with a name", "tools")
        spec = {"name": function["name"]}
        for key in ("description", "parameters"):
            if function.get(key) is not None:
                spec[key] = function[key]
        out.append({"type": "function", "function": spec})
    return out


def _apply_tool_choice(choice: Any, out: dict[str, Any]) -> None:
    """OpenAI `tool_choice` on a Cohere request: `required` -> REQUIRED, `none` -> NONE, one named
    function -> REQUIRED with only that tool offered; `auto` is Cohere's default."""
    if choice == "required":
        out["tool_choice"] = "REQUIRED"
    elif choice == "none":
        out["tool_choice"] = "NONE"
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        out["tools"] = [t for t in out.get("tools", []) if t["function"]["name"] == name]
        if not out["tools"]:
            raise _invalid(f"tool_choice names `{name}`, which is not among the tools", "tool_choice")
        out["tool_choice"] = "REQUIRED"


def _response_format(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("type") in (None, "text"):
        return None
    if value.get("type") == "json_object":
        return {"type": "json_object"}
    if value.get("type") == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"json_schema": schema} if schema is not None else {})}
    raise _invalid(f"Cohere does not support response_format `{value.get('type')}`", "response_format")


_SAMPLING = (
    ("temperature", "temperature"),
    ("top_p", "p"),
    ("seed", "seed"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
)


def chat_request_to_cohere(body: dict[str, Any], upstream_model: str, system_prompts: list[str], stream: bool) -> dict[str, Any]:
    """An OpenAI chat.completions body as a Cohere `POST /v2/chat` body."""
    if (body.get("n") or 1) > 1:
        raise _invalid("Cohere answers one choice per request: n must be 1", "n")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _invalid("`messages` must be an array", "messages")
    out: dict[str, Any] = {
        "model": upstream_model,
        "messages": openai_messages_to_cohere(messages, system_prompts),
        "stream": stream,
    }
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        _apply_tool_choice(body.get("tool_choice"), out)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        out["max_tokens"] = max_tokens
    for openai_name, cohere_name in _SAMPLING:
        if body.get(openai_name) is not None:
            out[cohere_name] = body[openai_name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = _response_format(body.get("response_format"))
    if response_format is not None:
        out["response_format"] = response_format
    return out


def embeddings_request_to_cohere(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """An OpenAI embeddings body as a Cohere `POST /v2/embed` body: float embeddings of documents
    (a client may choose another `input_type`, e.g. `search_query`, in the body)."""
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise _invalid("Cohere embeds text: `input` must be a string or an array of strings", "input")
    out: dict[str, Any] = {
        "model": upstream_model,
        "texts": texts,
        "input_type": body.get("input_type") or DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    }
    if body.get("dimensions"):
        out["output_dimension"] = body["dimensions"]
    return out
