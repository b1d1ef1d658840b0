"""A Responses API request -> the gateway's OpenAI chat-completions body, for deployments that have
no Responses API (Anthropic, Gemini, Bedrock, self-hosted chat servers, ...).

What translates: `instructions` (a system message first), message items (user, assistant, system;
developer messages are system messages) with `input_text` and `input_image` (URL or base64 data
URL) content, `function_call` items (assistant tool calls) and `function_call_output` items (tool
messages), function `tools`, `tool_choice`, `text.format` (`response_format`),
`max_output_tokens` (`max_completion_tokens`), `temperature`, `top_p`, `reasoning.effort`
(`reasoning_effort`, which the providers that have it read), `parallel_tool_calls`, `user`.

`reasoning` items are dropped (a chat model cannot take them back; it reasons afresh, the
conversation says the same), as are `include`, `text.verbosity`, `metadata` (kept in the stored
response) and fields chat has no place for. What a chat model cannot take at all is refused with
a 400 naming the item, part or tool type: hosted tools (`web_search`, `file_search`,
`computer_use_preview`, ...), `input_file` and `input_audio` parts, images given by `file_id`,
`item_reference` items and the items of hosted tools.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.responses.items import Item, item_type
from gateway.responses.request import ResponsesRequest, bad_request
from llmgw.contracts import ErrorCode

_encoder = msgspec.json.Encoder()

# An item to translate and where the client can find it (`input[3]`, or the stored conversation).
Located = tuple[Item, str]


def _unsupported(what: str, param: str, model: str) -> Exception:
    return bad_request(
        f"{what} cannot be sent to model `{model}`: its deployment has no Responses API, and chat completions have no "
        "equivalent (use a model served by OpenAI or Azure OpenAI for it).",
        param,
        ErrorCode.UNSUPPORTED_VALUE,
    )


def _image_part(part: dict[str, Any], where: str, model: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise _unsupported("An `input_image` given by `file_id`", where, model)
    image: dict[str, Any] = {"url": url}
    if isinstance(part.get("detail"), str) and part["detail"] != "auto":
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _parts(content: list[dict[str, Any]], where: str, model: str) -> list[dict[str, Any]]:
    """Responses content parts as chat content parts (text and images)."""
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            out.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "refusal":
            out.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image":
            out.append(_image_part(part, f"{where}.content[{j}]", model))
        else:
            raise _unsupported(f"A content part of type `{kind}`", f"{where}.content[{j}].type", model)
    return out


def _text(content: str | list[dict[str, Any]], where: str, model: str) -> str:
    if isinstance(content, str):
        return content
    parts = _parts(content, where, model)
    if any(p["type"] != "text" for p in parts):
        raise _unsupported("An image in an assistant or system message", f"{where}.content", model)
    return "".join(p["text"] for p in parts)


class _Conversation:
    """Chat messages built item by item: tool calls join the assistant message before them, tool
    outputs become tool messages, and images a tool returned follow them in a user message."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.messages: list[dict[str, Any]] = []
        self._pending_images: list[dict[str, Any]] = []

    def _flush_images(self) -> None:
        if self._pending_images:
            self.messages.append({"role": "user", "content": self._pending_images})
            self._pending_images = []

    def message(self, item: Item, where: str) -> None:
        self._flush_images()
        role, content = item.get("role"), item.get("content", "")
        if role == "assistant":
            self.messages.append({"role": "assistant", "content": _text(content, where, self.model)})
        elif role in ("system", "developer"):
            self.messages.append({"role": "system", "content": _text(content, where, self.model)})
        elif isinstance(content, str):
            self.messages.append({"role": "user", "content": content})
        else:
            parts = _parts(content, where, self.model)
            text_only = all(p["type"] == "text" for p in parts)
            self.messages.append({"role": "user", "content": "".join(p["text"] for p in parts) if text_only else parts})

    def function_call(self, item: Item) -> None:
        self._flush_images()
        call = {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
            if last["content"] == "":
                last["content"] = None
        else:
            self.messages.append({"role": "assistant", "content": None, "tool_calls": [call]})

    def function_call_output(self, item: Item, where: str) -> None:
        output = item.get("output")
        if isinstance(output, str):
            text = output
        else:
            parts = _parts(
                [p for p in output if isinstance(p, dict)] if isinstance(output, list) else [], f"{where}.output", self.model
            )
            text = "\n".join(p["text"] for p in parts if p["type"] == "text")
            self._pending_images.extend(p for p in parts if p["type"] != "text")
        self.messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})

    def add(self, item: Item, where: str) -> None:
        kind = item_type(item)
        if kind == "message":
            self.message(item, where)
        elif kind == "function_call":
            self.function_call(item)
        elif kind == "function_call_output":
            self.function_call_output(item, where)
        elif kind == "reasoning":
            return
        else:
            raise _unsupported(
                f"An input item of type `{kind}`", f"{where}.type" if where.startswith("input") else where, self.model
            )

    def done(self) -> list[dict[str, Any]]:
        self._flush_images()
        return self.messages


def _tools(tools: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind != "function":
            raise _unsupported(f"A tool of type `{kind}`", f"tools[{i}].type", model)
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request(f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name")
        function: dict[str, Any] = {"name": name, "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: str | dict[str, Any], model: str) -> str | dict[str, Any]:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad_request(f"Invalid value: {choice!r}. Supported values are: 'auto', 'none' and 'required'.", "tool_choice")
        return choice
    kind = choice.get("type")
    if kind == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _unsupported(f"A tool_choice of type `{kind}`", "tool_choice.type", model)


def _response_format(request: ResponsesRequest, model: str) -> dict[str, Any] | None:
    fmt = request.text.format if request.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.type == "json_schema":
        if not fmt.name or fmt.schema is None:
            raise bad_request("A `json_schema` text format needs its `name` and `schema`.", "text.format")
        schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema}
        if fmt.description is not None:
            schema["description"] = fmt.description
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}
    raise _unsupported(f"A text format of type `{fmt.type}`", "text.format.type", model)


def responses_to_chat(request: ResponsesRequest, items: list[Located], model: str) -> dict[str, Any]:
    """The chat-completions request (a dict) for `request` whose conversation is `items`;
    `model` names the model in errors."""
    conversation = _Conversation(model)
    if request.instructions:
        conversation.messages.append({"role": "system", "content": request.instructions})
    for item, where in items:
        conversation.add(item, where)
    messages = conversation.done()
    if not messages:
        raise bad_request("The input holds no message for the model.", "input")
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    for name in ("temperature", "top_p", "user"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.reasoning is not None and request.reasoning.effort:
        body["reasoning_effort"] = request.reasoning.effort
    if request.tools:
        body["tools"] = _tools(request.tools, model)
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice, model)
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    response_format = _response_format(request, model)
    if response_format is not None:
        body["response_format"] = response_format
    if request.stream or request.background:  # (a background response is always streamed upstream)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def responses_to_chat_body(request: ResponsesRequest, items: list[Located], model: str) -> bytes:
    return _encoder.encode(responses_to_chat(request, items, model))
