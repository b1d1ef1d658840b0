"""Anthropic Messages request -> OpenAI chat-completions body (the gateway's internal format).

Once converted, the request takes the normal path: the workers translate the OpenAI body to
whatever provider serves the model, so an Anthropic SDK client can reach any configured model.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.anthropic_messages.request import (
    Base64Source,
    ImageBlock,
    Message,
    MessagesRequest,
    TextBlock,
    ToolChoice,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
)

_encoder = msgspec.json.Encoder()


def image_to_part(block: ImageBlock) -> dict[str, Any]:
    """An image block as an OpenAI `image_url` part; base64 data travels as a data: URL."""
    source = block.source
    if isinstance(source, Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return {"type": "image_url", "image_url": {"url": url}}


def system_to_text(system: str | list[TextBlock]) -> str:
    """Anthropic's system prompt (a string or text blocks) as one OpenAI system message text."""
    if isinstance(system, str):
        return system
    return "\n\n".join(block.text for block in system)


def tool_result_to_message(block: ToolResultBlock) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the OpenAI `tool` message, the image parts it carried).

    OpenAI tool messages hold text only, so images returned by a tool go into the user message
    that follows. OpenAI has no error flag either: a failed call's text is prefixed with "Error:"
    so the model does not read a failure as a result.
    """
    images: list[dict[str, Any]] = []
    if block.content is None:
        text = ""
    elif isinstance(block.content, str):
        text = block.content
    else:
        texts = []
        for part in block.content:
            if isinstance(part, TextBlock):
                texts.append(part.text)
            elif isinstance(part, ImageBlock):
                images.append(image_to_part(part))
            # (a tool_reference, a tool search's find, says nothing to a model without the search)
        text = "\n".join(texts)
    if block.is_error:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}, images


def user_to_messages(message: Message) -> list[dict[str, Any]]:
    """A user turn: its tool results first (as `tool` messages, which must follow the assistant's
    tool calls directly), then one user message with the remaining text and images."""
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            tool_message, images = tool_result_to_message(block)
            tools.append(tool_message)
            parts.extend(images)
        elif isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(image_to_part(block))
    if not parts:
        return tools if tools else [{"role": "user", "content": ""}]
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tools, {"role": "user", "content": parts[0]["text"]}]
    return [*tools, {"role": "user", "content": parts}]


def assistant_to_message(message: Message) -> dict[str, Any]:
    """An assistant turn: its text as `content`, its tool_use blocks as `tool_calls`."""
    if isinstance(message.content, str):
        return {"role": "assistant", "content": message.content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = _encoder.encode(block.input).decode()
            calls.append({"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}})
    out: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    return out


def system_to_message(message: Message) -> dict[str, Any]:
    """A system message inside `messages`: an OpenAI system message at the same position."""
    content = message.content
    text = content if isinstance(content, str) else "\n\n".join(b.text for b in content if isinstance(b, TextBlock))
    return {"role": "system", "content": text}


def tool_choice_to_openai(choice: ToolChoice) -> str | dict[str, Any]:
    if isinstance(choice, ToolChoiceAny):
        return "required"
    if isinstance(choice, ToolChoiceTool):
        return {"type": "function", "function": {"name": choice.name}}
    if isinstance(choice, ToolChoiceNone):
        return "none"
    return "auto"


def messages_to_chat(req: MessagesRequest) -> dict[str, Any]:
    """The OpenAI chat-completions request, as a dict (see `messages_to_chat_body`)."""
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": system_to_text(req.system)})
    for message in req.messages:
        if message.role == "user":
            messages.extend(user_to_messages(message))
        elif message.role == "system":  # (the beta's system message inside the conversation)
            messages.append(system_to_message(message))
        else:
            messages.append(assistant_to_message(message))
    body: dict[str, Any] = {"model": req.model, "messages": messages, "max_tokens": req.max_tokens}
    if req.stop_sequences:
        body["stop"] = req.stop_sequences
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.metadata is not None and req.metadata.user_id:
        body["user"] = req.metadata.user_id
    # Deferred tools (tool search) are not shown to the model until a search finds them: without
    # the search, they are not shown at all.
    tools = [tool for tool in req.tools or () if not tool.defer_loading]
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description is not None else {}),
                    "parameters": tool.input_schema,
                },
            }
            for tool in tools
        ]
        # OpenAI refuses tool_choice / parallel_tool_calls without tools; Anthropic does not care.
        if req.tool_choice is not None:
            body["tool_choice"] = tool_choice_to_openai(req.tool_choice)
            if getattr(req.tool_choice, "disable_parallel_tool_use", None):
                body["parallel_tool_calls"] = False
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def messages_to_chat_body(req: MessagesRequest) -> bytes:
    """The OpenAI chat-completions JSON body the edge sends down the normal path."""
    return _encoder.encode(messages_to_chat(req))
