"""Cohere v2 stream events -> OpenAI `chat.completion.chunk` documents (`CohereStreamTranslator`).

Reference: https://docs.cohere.com/reference/chat-stream and https://docs.cohere.com/docs/streaming.
A stream is message-start, then content-start / content-delta... / content-end for text, or
tool-plan-delta... and per call tool-call-start / tool-call-delta... / tool-call-end, then
message-end with `delta.finish_reason` and `delta.usage`. citation-* and debug events carry
nothing OpenAI has. Tool calls are numbered 0, 1, ... among themselves, as OpenAI does.
"""

from __future__ import annotations

from llmgw.config import Deployment
from workers.providers.answers import StreamItem
from workers.providers.chunks import ChunkWriter
from workers.providers.cohere.response import cohere_usage_to_usage, finish_reason
from workers.providers.cohere.wire import Content, StreamEvent, ToolCall
from workers.providers.errors import failed_mid_answer


class CohereStreamTranslator:
    """One stream's state: feed it each event, relay what it returns; `finished` after message-end."""

    def __init__(self, deployment: Deployment, model: str, include_usage: bool) -> None:
        self.deployment = deployment
        self.include_usage = include_usage
        self.out = ChunkWriter(model, "chatcmpl-cohere")  # (the id becomes the message's)
        self.tool_calls = 0  # tool calls started so far; the current one is tool_calls - 1
        self.thinking = False  # the open content block is a reasoning model's `thinking`
        self.finished = False

    def feed(self, event: StreamEvent) -> list[StreamItem]:
        """The items an event turns into (often none)."""
        kind = event.type
        message = event.delta.message if event.delta is not None else None
        if kind == "content-delta" and message is not None and isinstance(message.content, Content):
            text = message.content.text
            return [self.out.delta({"content": text})] if text and not self.thinking else []
        if kind == "content-start":
            block = message.content if message is not None else None
            self.thinking = isinstance(block, Content) and block.type == "thinking"
            text = block.text if isinstance(block, Content) and not self.thinking else None
            return [self.out.delta({"content": text})] if text else []
        if kind == "tool-call-start" and message is not None and isinstance(message.tool_calls, ToolCall):
            call = message.tool_calls
            self.tool_calls += 1
            function = call.function
            return [
                self.out.delta(
                    {
                        "tool_calls": [
                            {
                                "index": self.tool_calls - 1,
                                "id": call.id or "",
                                "type": "function",
                                "function": {
                                    "name": function.name if function else "",
                                    "arguments": (function.arguments if function else None) or "",
                                },
                            }
                        ]
                    }
                )
            ]
        if kind == "tool-call-delta" and message is not None and isinstance(message.tool_calls, ToolCall):
            arguments = message.tool_calls.function.arguments if message.tool_calls.function else None
            if not arguments or not self.tool_calls:
                return []
            return [self.out.delta({"tool_calls": [{"index": self.tool_calls - 1, "function": {"arguments": arguments}}]})]
        if kind == "message-start":
            self.out.id = event.id or self.out.id
            return [self.out.delta({"role": "assistant", "content": ""})]
        if kind == "message-end":
            return self._finish(event)
        return []  # content-end, tool-plan-delta, tool-call-end, citation-*, debug

    def _finish(self, event: StreamEvent) -> list[StreamItem]:
        self.finished = True
        delta = event.delta
        if delta is not None and delta.finish_reason == "ERROR" and delta.error:
            raise failed_mid_answer(delta.error, self.deployment)
        items: list[StreamItem] = [self.out.delta({}, finish_reason(delta.finish_reason if delta is not None else None))]
        usage = cohere_usage_to_usage(delta.usage if delta is not None else None)
        if usage is not None:
            items.append(usage)
            if self.include_usage:
                items.append(self.out.chunk([], usage))
        return items
