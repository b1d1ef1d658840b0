"""OpenAI-format requests as Gemini's GenerateContentRequest and embedding requests.

References: https://ai.google.dev/api/generate-content#request-body (contents, systemInstruction,
tools.functionDeclarations, toolConfig.functionCallingConfig, generationConfig),
https://ai.google.dev/api/caching#Content (Part: text, inlineData, fileData, functionCall,
functionResponse), https://ai.google.dev/api/embeddings#method:-models.batchembedcontents and the
Vertex AI text-embeddings `:predict` body (`instances[].content`, `parameters.outputDimensionality`).
Vertex AI's generateContent takes the same body as the Gemini API.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import msgspec

from llmgw.contracts import ErrorCode, ErrorType
from workers.providers.base import UpstreamError

_ROLES = {"user": "user", "assistant": "model"}
_SYSTEM_ROLES = ("system", "developer")
_TOOL_ROLES = ("tool", "function")
# JSON-Schema keywords the Gemini `parameters` schema (an OpenAPI subset) refuses.
_UNSUPPORTED_SCHEMA_KEYS = frozenset({"$schema", "additionalProperties", "strict", "$id"})
_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


class _Function(msgspec.Struct):
    name: str = ""
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    id: str = ""
    type: str = "function"
    function: _Function | None = None


class _Message(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: _Function | None = None  # the legacy single function call


class _ChatRequest(msgspec.Struct):
    messages: list[_Message] = []
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class _EmbeddingsRequest(msgspec.Struct):
    input: str | list[str | int | list[int]] = ""
    dimensions: int | None = None
    encoding_format: str | None = None


_chat_decoder = msgspec.json.Decoder(_ChatRequest)
_embeddings_decoder = msgspec.json.Decoder(_EmbeddingsRequest)
_json_decode = msgspec.json.decode


def invalid(message: str, param: str | None = None) -> UpstreamError:
    return UpstreamError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def _decode(decoder: msgspec.json.Decoder, body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise invalid(f"the request cannot be sent to Gemini: {exc}") from None


# ---- message content ----


def _text_of(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _media_part(url: str) -> dict[str, Any]:
    """An image (or other file) URL: a data: URL goes inline, any other URL by reference."""
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        if not sep or not head.endswith(";base64"):
            raise invalid("image_url data: URLs must be base64 encoded", "messages")
        return {"inlineData": {"mimeType": head.removesuffix(";base64") or "application/octet-stream", "data": data}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def content_to_parts(content: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for item in content:
        kind = item.get("type")
        if kind == "text":
            parts.append({"text": item.get("text") or ""})
        elif kind == "image_url":
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise invalid("image_url parts need a url", "messages")
            parts.append(_media_part(url))
        elif kind == "input_audio":
            audio = item.get("input_audio") or {}
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format') or 'wav'}", "data": audio.get("data") or ""}})
        else:
            raise invalid(f"content parts of type {kind!r} are not supported by Gemini", "messages")
    return parts


def _function_response(name: str, content: str | list[dict[str, Any]] | None) -> dict[str, Any]:
    """A tool result as a functionResponse: a JSON object result goes as is, anything else as
    `{"output": ...}` (the documented key for a function's output)."""
    text = _text_of(content)
    try:
        value: Any = _json_decode(text) if text else text
    except msgspec.DecodeError:
        value = text
    return {"functionResponse": {"name": name, "response": value if isinstance(value, dict) else {"output": value}}}


def _function_call(function: _Function) -> dict[str, Any]:
    try:
        args = _json_decode(function.arguments) if function.arguments else {}
    except msgspec.DecodeError:
        raise invalid(f"the arguments of tool call {function.name!r} are not JSON", "messages") from None
    return {"functionCall": {"name": function.name, "args": args if isinstance(args, dict) else {"value": args}}}


def messages_to_contents(
    messages: list[_Message], system_prompts: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(contents, systemInstruction). Policy prompts come first in the system instruction;
    consecutive turns of one role are merged (parallel tool results answer one model turn)."""
    system = [{"text": p} for p in system_prompts]
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the tool results that follow

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for m in messages:
        if m.role in _SYSTEM_ROLES:
            system.extend(content_to_parts(m.content))
        elif m.role in _TOOL_ROLES:
            name = names.get(m.tool_call_id or "") or m.name
            if not name:
                raise invalid("a tool message must answer a tool call of an earlier assistant message", "messages")
            add("user", [_function_response(name, m.content)])
        elif m.role in _ROLES:
            parts = content_to_parts(m.content)
            if m.role == "assistant":  # ("" beside tool calls: Gemini refuses empty text parts)
                parts = [p for p in parts if p.get("text") != ""]
            for call in m.tool_calls or ():
                if call.function is not None:
                    names[call.id] = call.function.name
                    parts.append(_function_call(call.function))
            if m.function_call is not None:
                parts.append(_function_call(m.function_call))
            add(_ROLES[m.role], parts)
        else:
            raise invalid(f"messages with role {m.role!r} are not supported by Gemini", "messages")
    return contents, ({"parts": system} if system else None)


# ---- tools and generation settings ----


def _clean_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _clean_schema(v) for k, v in schema.items() if k not in _UNSUPPORTED_SCHEMA_KEYS}
    if isinstance(schema, list):
        return [_clean_schema(v) for v in schema]
    return schema


def tools_to_gemini(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations = []
    for tool in tools:
        if tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
            raise invalid(f"tools of type {tool.get('type')!r} are not supported by Gemini", "tools")
        fn = tool["function"]
        declaration: dict[str, Any] = {"name": fn.get("name") or ""}
        if fn.get("description"):
            declaration["description"] = fn["description"]
        if fn.get("parameters"):
            declaration["parameters"] = _clean_schema(fn["parameters"])
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def tool_choice_to_gemini(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_MODES:
            raise invalid(f"tool_choice {choice!r} is not supported", "tool_choice")
        return {"functionCallingConfig": {"mode": _TOOL_CHOICE_MODES[choice]}}
    name = (choice.get("function") or {}).get("name")
    if not name:
        raise invalid("tool_choice must name a function", "tool_choice")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def generation_config(req: _ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    limits = [v for v in (req.max_completion_tokens, req.max_tokens) if v is not None]
    limit = min(limits) if limits else None  # (a cost cap may have lowered either)
    for key, value in (
        ("maxOutputTokens", limit),
        ("temperature", req.temperature),
        ("topP", req.top_p),
        ("candidateCount", req.n),
        ("presencePenalty", req.presence_penalty),
        ("frequencyPenalty", req.frequency_penalty),
        ("seed", req.seed),
    ):
        if value is not None:
            config[key] = value
    if req.stop:
        config["stopSequences"] = [req.stop] if isinstance(req.stop, str) else req.stop
    fmt = req.response_format or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    return config


def chat_request_to_gemini(body: bytes, system_prompts: list[str]) -> dict[str, Any]:
    """The client's OpenAI chat body as a GenerateContentRequest (the model goes in the URL)."""
    req: _ChatRequest = _decode(_chat_decoder, body)
    contents, system = messages_to_contents(req.messages, system_prompts)
    out: dict[str, Any] = {"contents": contents}
    if system is not None:
        out["systemInstruction"] = system
    if req.tools:
        out["tools"] = tools_to_gemini(req.tools)
    if req.tool_choice is not None and req.tools:
        out["toolConfig"] = tool_choice_to_gemini(req.tool_choice)
    config = generation_config(req)
    if config:
        out["generationConfig"] = config
    return out


# ---- embeddings ----


def embedding_inputs(body: bytes) -> tuple[list[str], int | None, bool]:
    """(texts, dimensions, base64 wanted) of an OpenAI embeddings body."""
    req: _EmbeddingsRequest = _decode(_embeddings_decoder, body)
    texts = [req.input] if isinstance(req.input, str) else req.input
    if not all(isinstance(t, str) for t in texts):
        raise invalid("Google embedding models take text input, not token arrays", "input")
    return texts, req.dimensions, req.encoding_format == "base64"  # type: ignore[return-value]


def embeddings_to_gemini_batch(texts: list[str], model: str, dimensions: int | None) -> dict[str, Any]:
    def one(text: str) -> dict[str, Any]:
        item: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            item["outputDimensionality"] = dimensions
        return item

    return {"requests": [one(t) for t in texts]}


def embeddings_to_vertex_predict(texts: list[str], dimensions: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"instances": [{"content": t} for t in texts]}
    if dimensions is not None:
        out["parameters"] = {"outputDimensionality": dimensions}
    return out
