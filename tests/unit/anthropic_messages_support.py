"""What the `/v1/messages` converter modules share: JSON in and out, OpenAI answers and stream
chunks as an upstream sends them, and Anthropic's SSE framing read back."""

from __future__ import annotations

import msgspec

enc = msgspec.json.encode
dec = msgspec.json.decode


def completion(message: dict, finish: str | None = "stop", usage: dict | None = None, id: str = "chatcmpl-abc123") -> bytes:
    doc = {
        "id": id,
        "object": "chat.completion",
        "created": 1,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
    }
    if usage is not None:
        doc["usage"] = usage
    return enc(doc)


def chunk(delta: dict | None = None, finish: str | None = None) -> bytes:
    return enc(
        {
            "id": "chatcmpl-s1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "upstream-model",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        }
    )


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> bytes:
    usage: dict[str, object] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return enc(
        {
            "id": "chatcmpl-s1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "upstream-model",
            "choices": [],
            "usage": usage,
        }
    )


STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me "}),
    chunk({"content": "check."}),
    chunk(
        {"tool_calls": [{"index": 0, "id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo", "days": 3}'}}]}),
    chunk({}, finish="tool_calls"),
    usage_chunk(120, 25, cached=20),
]


def parse_sse(data: bytes) -> list[tuple[str, dict]]:
    """The (event name, JSON data) pairs of an SSE byte string, checking Anthropic's framing."""
    events = []
    for frame in data.split(b"\n\n"):
        if not frame:
            continue
        name_line, data_line = frame.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        payload = dec(data_line[len(b"data: ") :])
        assert payload["type"] == name_line[len(b"event: ") :].decode()
        events.append((payload["type"], payload))
    assert data.endswith(b"\n\n") or not data
    return events
