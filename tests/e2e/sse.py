"""Server-sent events as the e2e tests read them off a streamed answer: (id, data) of each event
of a resumable stream, the `data:` payloads of a response in order, and the text the chat
completion chunks among them carry."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import httpx


def sse_events(lines: Iterable[str]) -> Iterator[tuple[int | None, str]]:
    """(id, data) of each server-sent event, as read line by line."""
    event_id: int | None = None
    for line in lines:
        if line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("data:"):
            yield event_id, line[5:].strip()
            event_id = None


def sse_data(response: httpx.Response) -> Iterator[str]:
    """The `data:` payloads of an SSE response, in order."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line[len("data: ") :]


def content_of(events: list[str]) -> str:
    """The text the chunks carried (the error event and [DONE] left out)."""
    text = []
    for data in events:
        if data == "[DONE]":
            continue
        chunk = json.loads(data)
        for choice in chunk.get("choices", []):
            text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)
