"""A stream of OpenAI chat.completion.chunk documents -> Anthropic Messages stream events.

Anthropic streams content as indexed blocks (`content_block_start` / `_delta` / `_stop`) framed
by `message_start` and `message_delta` + `message_stop`; OpenAI streams deltas of one message.
The translator opens a text block when text arrives, a tool_use block when a tool call is
named, and closes the open block when the next one starts. OpenAI reports usage only in the
last chunk, so `message_start` says 0 tokens and `message_delta.usage` carries the final input
and output counts (the anthropic SDK's accumulator takes both from there).
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.anthropic_messages.reply import tool_use_id
from gateway.anthropic_messages.wire import PING, error_event, sse_event, stop_reason, usage_to_anthropic
from gateway.chat_answers import ChatUsage, Delta, FunctionDelta, ToolCallDelta, chunk_decoder


class _ToolCall:
    """One OpenAI tool call being streamed; its block starts once its name is known."""

    __slots__ = ("block", "id", "name", "pending")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.block: int | None = None
        self.pending = ""  # argument fragments that arrived before the name


class StreamTranslator:
    """Turns one answer's OpenAI chunks into Anthropic SSE events, chunk by chunk.

    The message ends (`message_delta` + `message_stop`) once both the finish chunk and the
    usage-only chunk (`choices: []`, which the edge always asks for) have arrived, or at
    `finish()` for an upstream that sent no usage chunk. After the end, everything returns b"".
    """

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.done = False
        self._started = False
        self._open: int | None = None  # index of the open content block
        self._open_is_text = False
        self._next_index = 0
        self._tools: dict[int, _ToolCall] = {}
        self._finish_reason: str | None = None
        self._finished = False
        self._usage: ChatUsage | None = None
        self._usage_final = False

    def start(self) -> bytes:
        """The `message_start` event, once (feed sends it before the first content)."""
        if self._started or self.done:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return sse_event("message_start", {"type": "message_start", "message": message})

    def feed(self, chunk_json: bytes) -> bytes:
        """The events for one OpenAI chunk (b"" for an unreadable one: the stream goes on)."""
        if self.done:
            return b""
        try:
            chunk = chunk_decoder.decode(chunk_json)
        except msgspec.MsgspecError:
            return b""
        out = [self.start()]
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            if choice.delta is not None:
                self._delta(choice.delta, out)
            if choice.finish_reason:
                self._finish_reason = choice.finish_reason
                self._finished = True
                self._close_all(out)
        if not chunk.choices and chunk.usage is not None:
            self._usage_final = True
        if self._finished and self._usage_final:
            self._end(out)
        return b"".join(out)

    def finish(self) -> bytes:
        """Close whatever is open and end the message (no-op if it has ended already)."""
        if self.done:
            return b""
        out = [self.start()]
        self._end(out)
        return b"".join(out)

    def error_event(self, message: str, type: str = "api_error") -> bytes:
        """An `event: error` ending the stream (b"" if the message already ended properly)."""
        if self.done:
            return b""
        self.done = True
        return error_event(message, type)

    def ping(self) -> bytes:
        """A keep-alive `ping` event, for long silences."""
        return b"" if self.done else PING

    # -- blocks ---------------------------------------------------------------------------------

    def _delta(self, delta: Delta, out: list[bytes]) -> None:
        text = delta.content or delta.refusal
        if text:
            index = self._open
            if index is None or not self._open_is_text:
                self._close(out)
                index = self._open_block({"type": "text", "text": ""}, out, text=True)
            out.append(self._block_delta(index, {"type": "text_delta", "text": text}))
        for call in delta.tool_calls or ():
            self._tool_delta(call, out)

    def _tool_delta(self, delta: ToolCallDelta, out: list[bytes]) -> None:
        key = delta.index
        if key is None:  # not per spec, but some upstreams omit it: a new id is a new call
            known = {call.id for call in self._tools.values()}
            key = len(self._tools) if (delta.id and delta.id not in known) or not self._tools else max(self._tools)
        call = self._tools.setdefault(key, _ToolCall())
        function = delta.function or FunctionDelta()
        call.id = call.id or delta.id
        call.name = call.name or function.name
        if call.block is None:
            call.pending += function.arguments or ""
            if call.name:
                self._start_tool(call, out)
        elif function.arguments:
            # OpenAI streams tool calls one after the other; a fragment for an earlier call (an
            # upstream interleaving them) still goes to that call's block, where the SDK puts it.
            out.append(self._block_delta(call.block, {"type": "input_json_delta", "partial_json": function.arguments}))

    def _start_tool(self, call: _ToolCall, out: list[bytes]) -> None:
        self._close(out)
        block = {"type": "tool_use", "id": call.id or tool_use_id(), "name": call.name or "", "input": {}}
        call.block = self._open_block(block, out, text=False)
        if call.pending:
            out.append(self._block_delta(call.block, {"type": "input_json_delta", "partial_json": call.pending}))
            call.pending = ""

    def _open_block(self, block: dict, out: list[bytes], text: bool) -> int:
        index = self._next_index
        self._next_index += 1
        self._open, self._open_is_text = index, text
        out.append(sse_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        return index

    def _block_delta(self, index: int, delta: dict) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": self._open}))
            self._open = None

    def _close_all(self, out: list[bytes]) -> None:
        """Close the open block, and emit tool calls whose name never came (as best it can)."""
        self._close(out)
        for call in self._tools.values():
            if call.block is None:
                self._start_tool(call, out)
                self._close(out)

    def _end(self, out: list[bytes]) -> None:
        self._close_all(out)
        usage = usage_to_anthropic(self._usage) if self._usage is not None else {"output_tokens": 0}
        reason = stop_reason(self._finish_reason, bool(self._tools))
        out.append(
            sse_event(
                "message_delta",
                {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage},
            )
        )
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        self.done = True
