"""An Anthropic Messages body (what `/v1/messages` and its count_tokens forward) as a worker reads it:
its text, counted by the offline tokenizer for a deployment that cannot count it (count_tokens on
a model that is not Anthropic's), and the changes the gateway makes before forwarding it to
Anthropic (the policy system prompts put first, `max_tokens` held to what the budget can pay).

Which text counts (https://docs.anthropic.com/en/api/messages-count-tokens counts the whole
request): the system prompt, every text block, tool_use blocks (the tool's name and its input as
JSON), tool_result contents, thinking text, and each tool definition (name, description, input
schema as JSON); images and documents are not text and are not counted.
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmgw.tokens import count_many

_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


def _json(value: Any) -> str:
    return _encoder.encode(value).decode()


def _block_texts(block: Any) -> list[str]:
    if isinstance(block, str):
        return [block]
    if not isinstance(block, dict):
        return []
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return [block["text"]]
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return [block["thinking"]]
    if kind == "tool_use":
        return [str(block.get("name") or ""), _json(block.get("input") or {})]
    if kind == "tool_result":
        content = block.get("content")
        parts = content if isinstance(content, list) else [content] if isinstance(content, str) else []
        return [text for part in parts for text in _block_texts(part)]
    return []


def request_texts(data: dict[str, Any]) -> list[str]:
    """The texts of a decoded Messages request that count toward its input tokens."""
    texts: list[str] = []
    system = data.get("system")
    for block in system if isinstance(system, list) else [system]:
        texts.extend(_block_texts(block))
    for message in data.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else [content]:
            texts.extend(_block_texts(block))
    for tool in data.get("tools") or ():
        if isinstance(tool, dict):
            texts.append(str(tool.get("name") or ""))
            if isinstance(tool.get("description"), str):
                texts.append(tool["description"])
            if tool.get("input_schema") is not None:
                texts.append(_json(tool["input_schema"]))
    return [text for text in texts if text]


def decoded(body: bytes) -> dict[str, Any]:
    """The body as a dict ({} when it is not a JSON object: the edge checked it already)."""
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError:
        return {}


def estimated_input_tokens(body: bytes, system_prompts: list[str], upstream_model: str) -> int:
    """The request's input tokens for `upstream_model`, by the offline tokenizer (the policy
    system prompts the gateway puts first included)."""
    texts = [*system_prompts, *request_texts(decoded(body))]
    return sum(count_many(texts, upstream_model))


def with_system_prompts(data: dict[str, Any], system_prompts: list[str]) -> None:
    """Put the policy prompts before the request's own system prompt (in place)."""
    if not system_prompts:
        return
    system = data.get("system")
    own = [{"type": "text", "text": system}] if isinstance(system, str) and system else system if isinstance(system, list) else []
    data["system"] = [*({"type": "text", "text": prompt} for prompt in system_prompts), *own]


def forwarded_body(body: bytes, upstream_model: str, system_prompts: list[str], max_tokens: int | None) -> bytes:
    """The body Anthropic gets: the deployment's model name, the policy prompts first, and
    `max_tokens` lowered to `max_tokens` when given (what a capped budget still pays for)."""
    data = decoded(body)
    if not data:
        return body
    data["model"] = upstream_model
    with_system_prompts(data, system_prompts)
    asked = data.get("max_tokens")
    if max_tokens is not None and isinstance(asked, int) and asked > max_tokens:
        data["max_tokens"] = max_tokens
    return _encoder.encode(data)
