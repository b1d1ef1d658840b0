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

from workers.providers.errors import UpstreamError, invalid_request
from workers.providers.openai_request import (
    ChatMessage,
    ChatRequest,
    Content,
    EmbeddingsRequest,
    FunctionCall,
    ImageURL,
    InputAudio,
    NamedToolChoice,
    Tool,
    text_of,
)

_ROLES = {"user": "user", "assistant": "model"}
_SYSTEM_ROLES = ("system", "developer")
_TOOL_ROLES = ("tool", "function")
# JSON-Schema keywords the Gemini `parameters` schema (an OpenAPI subset) refuses.
_UNSUPPORTED_SCHEMA_KEYS = frozenset({"$schema", "additionalProperties", "strict", "$id"})
_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_json_decode = msgspec.json.decode


def invalid(message: str, param: str | None = None) -> UpstreamError:
    return invalid_request(message, param)


# ---- message content ----


def _media_part(url: str) -> dict[str, Any]:
    """An image (or other file) URL: a data: URL goes inline, any other URL by reference."""
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        if not sep or not head.endswith(";base64"):
            raise invalid("image_url data: URLs must be base64 encoded", "messages")
        return {"inlineData": {"mimeType": head.removesuffix(";base64") or "application/octet-stream", "data": data}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def content_to_parts(content: Content) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for item in content:
        if item.type == "text":
            parts.append({"text": item.text or ""})
        elif item.type == "image_url":
            url = item.image_url.url if isinstance(item.image_url, ImageURL) else item.image_url
            if not isinstance(url, str):
                raise invalid("image_url parts need a url", "messages")
            parts.append(_media_part(url))
        elif item.type == "input_audio":
            audio = item.input_audio or InputAudio()
            parts.append({"inlineData": {"mimeType": f"audio/{audio.format or 'wav'}", "data": audio.data or ""}})
        else:
            raise invalid(f"content parts of type {item.type!r} are not supported by Gemini", "messages")
    return parts


def _function_response(name: str, content: Content) -> dict[str, Any]:
    """A tool result as a functionResponse: a JSON object result goes as is, anything else as
    `{"output": ...}` (the documented key for a function's output)."""
    text = text_of(content)
    try:
        value: Any = _json_decode(text) if text else text
    except msgspec.DecodeError:
        value = text
    return {"functionResponse": {"name": name, "response": value if isinstance(value, dict) else {"output": value}}}


def _function_call(function: FunctionCall) -> dict[str, Any]:
    arguments = function.arguments
    try:
        args = _json_decode(arguments) if isinstance(arguments, str) and arguments else arguments or {}
    except msgspec.DecodeError:
        raise invalid(f"the arguments of tool call {function.name!r} are not JSON", "messages") from None
    return {"functionCall": {"name": function.name or "", "args": args if isinstance(args, dict) else {"value": args}}}


def messages_to_contents(
    messages: list[ChatMessage], system_prompts: list[str]
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
                    names[call.id or ""] = call.function.name or ""
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


def tools_to_gemini(tools: list[Tool]) -> list[dict[str, Any]]:
    declarations = []
    for tool in tools:
        fn = tool.function
        if tool.type != "function" or fn is None:
            raise invalid(f"tools of type {tool.type!r} are not supported by Gemini", "tools")
        declaration: dict[str, Any] = {"name": fn.name or ""}
        if fn.description:
            declaration["description"] = fn.description
        if fn.parameters:
            declaration["parameters"] = _clean_schema(fn.parameters)
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def tool_choice_to_gemini(choice: str | NamedToolChoice) -> dict[str, Any]:
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_MODES:
            raise invalid(f"tool_choice {choice!r} is not supported", "tool_choice")
        return {"functionCallingConfig": {"mode": _TOOL_CHOICE_MODES[choice]}}
    name = choice.function.name if choice.function is not None else None
    if not name:
        raise invalid("tool_choice must name a function", "tool_choice")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def generation_config(req: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in (
        ("maxOutputTokens", req.completion_limit()),  # (the lower of the two: a cost cap may have lowered either)
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
    fmt = req.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = fmt.json_schema.schema if fmt.json_schema is not None else None
        if schema:
            config["responseJsonSchema"] = schema
    return config


def chat_request_to_gemini(req: ChatRequest, system_prompts: list[str]) -> dict[str, Any]:
    """The client's OpenAI chat request as a GenerateContentRequest (the model goes in the URL)."""
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


def embedding_inputs(req: EmbeddingsRequest) -> tuple[list[str], int | None, bool]:
    """(texts, dimensions, base64 wanted) of an OpenAI embeddings request."""
    texts = req.texts()
    if texts is None:
        raise invalid("Google embedding models take text input, not token arrays", "input")
    return texts, req.dimensions, req.encoding_format == "base64"


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
