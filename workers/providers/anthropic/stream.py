"""Anthropic stream events -> OpenAI `chat.completion.chunk` documents (`AnthropicStreamTranslator`).

Reference: https://docs.anthropic.com/en/api/messages-streaming. A stream is message_start, then
per content block content_block_start / content_block_delta... / content_block_stop, then
message_delta (stop_reason, output usage) and message_stop; `ping` may come anywhere and an
`error` event may end it early. OpenAI numbers tool calls 0, 1, ... among themselves, while
Anthropic's `index` counts every content block, so tool blocks are renumbered.
"""

from __future__ import annotations

from llmgw.config import Deployment
from workers.providers.answers import StreamItem
from workers.providers.anthropic.response import (
    anthropic_stream_error,
    anthropic_usage_to_usage,
    finish_reason,
    merge_usage,
    tool_call_json,
    usage_json,
)
from workers.providers.anthropic.wire import AnthropicUsage, StreamEvent
from workers.providers.chunks import ChunkWriter
from workers.usage import Usage


class AnthropicStreamTranslator:
    """One stream's state: feed it each event, relay what it returns; `finished` after message_stop."""

    def __init__(self, deployment: Deployment, model: str, include_usage: bool) -> None:
        self.deployment = deployment
        self.include_usage = include_usage
        self.out = ChunkWriter(model, "chatcmpl-anthropic")  # (the id and model become the message's)
        self.usage: AnthropicUsage | None = None
        self.stop_reason: str | None = None
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self.finished = False

    def feed(self, event: StreamEvent) -> list[StreamItem]:
        """The items an event turns into (often none); raises UpstreamError on an `error` event."""
        kind = event.type
        if kind == "content_block_delta" and event.delta is not None:
            delta = event.delta
            if delta.type == "text_delta" and delta.text:
                return [self.out.delta({"content": delta.text})]
            if delta.type == "input_json_delta" and delta.partial_json:
                index = self.tool_index.get(event.index if event.index is not None else -1)
                if index is not None:
                    return [self.out.delta({"tool_calls": [{"index": index, "function": {"arguments": delta.partial_json}}]})]
            return []  # thinking, signature and citation deltas have no OpenAI chunk
        if kind == "content_block_start" and event.content_block is not None:
            block = event.content_block
            if block.type == "tool_use":
                index = self.tool_index[event.index if event.index is not None else -1] = len(self.tool_index)
                return [self.out.delta({"tool_calls": [{"index": index, **tool_call_json(block.id, block.name, "")}]})]
            if block.type == "text" and block.text:
                return [self.out.delta({"content": block.text})]
            return []
        if kind == "message_start" and event.message is not None:
            self.out.id = event.message.id
            self.out.model = event.message.model or self.out.model
            if event.message.usage is not None:
                self.usage = event.message.usage
            return [self.out.delta({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            if event.delta is not None and event.delta.stop_reason is not None:
                self.stop_reason = event.delta.stop_reason
            if event.usage is not None:
                self.usage = merge_usage(self.usage, event.usage)
            return []
        if kind == "message_stop":
            return self._finish()
        if kind == "error":
            raise anthropic_stream_error(event.error, self.deployment)
        return []  # ping, content_block_stop, and event types added later

    def _finish(self) -> list[StreamItem]:
        self.finished = True
        items: list[StreamItem] = [self.out.delta({}, finish_reason(self.stop_reason))]
        if self.usage is not None:
            usage: Usage = anthropic_usage_to_usage(self.usage)
            items.append(usage)
            if self.include_usage:
                items.append(self.out.chunk([], usage_json(usage)))
        return items
