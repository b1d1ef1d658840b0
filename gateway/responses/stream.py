"""A stream of OpenAI chat.completion.chunk documents -> the Responses API's typed stream events.

The response opens with `response.created` and `response.in_progress`; text opens a `message`
output item (`response.output_item.added`, `response.content_part.added`, then
`response.output_text.delta`s), a tool call opens a `function_call` item
(`response.function_call_arguments.delta`s). An item is closed (`..._done` events, then
`response.output_item.done` with the whole item) when the next one starts or the answer ends; the
answer ends with `response.completed` (or `response.incomplete`) carrying the whole response and
its usage, once both the finish chunk and the usage chunk (which the edge always asks for) have
arrived. Every event has a `sequence_number`, from 0 up. A failure ends the stream with an `error`
event and `response.failed`.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from gateway.chat_answers import ChatUsage, Delta, FunctionDelta, ToolCallDelta, chunk_decoder
from gateway.responses.request import ResponsesRequest
from gateway.responses.wire import (
    chat_usage_to_responses,
    derived_id,
    function_call_item,
    message_item,
    response_object,
    sse_event,
)
from llmgw.contracts import ErrorCode


class _Message:
    __slots__ = ("id", "index", "text")

    def __init__(self, index: int, item_id: str) -> None:
        self.id = item_id
        self.index = index
        self.text = ""


class _Call:
    """A tool call being streamed; its item opens once its name is known."""

    __slots__ = ("arguments", "call_id", "id", "index", "name", "pending")

    def __init__(self, item_id: str) -> None:
        self.id = item_id
        self.call_id: str | None = None
        self.name: str | None = None
        self.index: int | None = None  # its output index, once its item is open
        self.arguments = ""
        self.pending = ""  # argument fragments that came before the name


class ResponsesStreamTranslator:
    """Turns one answer's chat chunks into Responses events; `final` is the whole response once
    the stream completed (what is stored)."""

    def __init__(self, request: ResponsesRequest, model: str, response_id: str) -> None:
        self.request = request
        self.model = model
        self.response_id = response_id
        self.created_at = int(time.time())
        self.done = False
        self.final: dict[str, Any] | None = None
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any]] = []  # closed items, by output index
        self._message: _Message | None = None
        self._calls: dict[int, _Call] = {}
        self._open_calls: list[_Call] = []
        self._finish_reason: str | None = None
        self._finished = False
        self._usage: ChatUsage | None = None
        self._usage_final = False
        self._items = 0  # ids made so far (derived from the response's: an edge taking it over makes the same)

    def _item_id(self, prefix: str) -> str:
        self._items += 1
        return derived_id(prefix, self.response_id, self._items)

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, **fields, "sequence_number": self._seq}
        self._seq += 1
        return sse_event(event)

    def _response(self, status: str, **more: Any) -> dict[str, Any]:
        return response_object(self.request, self.model, self.response_id, self.created_at, status=status, **more)

    def start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        out.append(self._event("response.created", response=self._response("in_progress", output=[])))
        out.append(self._event("response.in_progress", response=self._response("in_progress", output=[])))

    def feed(self, chunk_json: bytes) -> bytes:
        """The events for one chat chunk (b"" for an unreadable one: the stream goes on)."""
        if self.done:
            return b""
        try:
            chunk = chunk_decoder.decode(chunk_json)
        except msgspec.MsgspecError:
            return b""
        out: list[bytes] = []
        self.start(out)
        if chunk.usage is not None:
            self._usage = chunk.usage
            self._usage_final = not chunk.choices
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            if choice.delta is not None:
                self._delta(choice.delta, out)
            if choice.finish_reason:
                self._finish_reason = choice.finish_reason
                self._finished = True
        if self._finished and self._usage_final:
            self._end(out)
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the answer, for an upstream that sent no usage chunk (b"" if it ended)."""
        if self.done:
            return b""
        out: list[bytes] = []
        self.start(out)
        self._end(out)
        return b"".join(out)

    def error(self, message: str, code: str | None) -> bytes:
        """`error` and `response.failed`, ending the stream (b"" if it already ended)."""
        if self.done:
            return b""
        out: list[bytes] = []
        self.start(out)
        self.done = True
        out.append(self._event("error", code=code, message=message, param=None))
        # (a response's error has codes of its own: the `error` event above carries the gateway's)
        failed_code = "rate_limit_exceeded" if code in (ErrorCode.RATE_LIMITED, ErrorCode.BUDGET_EXCEEDED) else "server_error"
        failed = self._response("failed", output=self._output, error={"code": failed_code, "message": message})
        out.append(self._event("response.failed", response=failed))
        return b"".join(out)

    # ---- items -----------------------------------------------------------------------------------

    def _delta(self, delta: Delta, out: list[bytes]) -> None:
        text = delta.content or delta.refusal
        if text:
            if self._message is None:
                self._close_calls(out)
                self._open_message(out)
            message = self._message
            assert message is not None
            message.text += text
            out.append(
                self._event(
                    "response.output_text.delta",
                    item_id=message.id,
                    output_index=message.index,
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            )
        for call in delta.tool_calls or ():
            self._tool_delta(call, out)

    def _open_message(self, out: list[bytes]) -> None:
        message = self._message = _Message(self._next_index(), self._item_id("msg"))
        self._output.append(message_item(message.id, "", status="in_progress"))
        out.append(self._event("response.output_item.added", output_index=message.index, item=self._output[message.index]))
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        out.append(
            self._event("response.content_part.added", item_id=message.id, output_index=message.index, content_index=0, part=part)
        )

    def _close_message(self, out: list[bytes]) -> None:
        message = self._message
        if message is None:
            return
        self._message = None
        where = {"item_id": message.id, "output_index": message.index, "content_index": 0}
        out.append(self._event("response.output_text.done", **where, text=message.text, logprobs=[]))
        part = {"type": "output_text", "text": message.text, "annotations": [], "logprobs": []}
        out.append(self._event("response.content_part.done", **where, part=part))
        item = self._output[message.index] = message_item(message.id, message.text)
        out.append(self._event("response.output_item.done", output_index=message.index, item=item))

    def _tool_delta(self, delta: ToolCallDelta, out: list[bytes]) -> None:
        key = delta.index
        if key is None:  # not per spec, but some upstreams omit it: a new id is a new call
            known = {call.call_id for call in self._calls.values()}
            key = len(self._calls) if (delta.id and delta.id not in known) or not self._calls else max(self._calls)
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call(self._item_id("fc"))
        function = delta.function or FunctionDelta()
        call.call_id = call.call_id or delta.id
        call.name = call.name or function.name
        fragment = function.arguments or ""
        if call.index is None:
            call.pending += fragment
            if call.name:
                self._open_call(call, out)
        elif fragment:
            call.arguments += fragment
            out.append(
                self._event("response.function_call_arguments.delta", item_id=call.id, output_index=call.index, delta=fragment)
            )

    def _open_call(self, call: _Call, out: list[bytes]) -> None:
        self._close_message(out)
        call.call_id = call.call_id or self._item_id("call")
        call.index = self._next_index()
        self._output.append(function_call_item(call.id, call.call_id, call.name or "", "", status="in_progress"))
        self._open_calls.append(call)
        out.append(self._event("response.output_item.added", output_index=call.index, item=self._output[call.index]))
        if call.pending:
            call.arguments, call.pending = call.pending, ""
            out.append(
                self._event(
                    "response.function_call_arguments.delta", item_id=call.id, output_index=call.index, delta=call.arguments
                )
            )

    def _close_calls(self, out: list[bytes]) -> None:
        for call in self._calls.values():
            if call.index is None:  # its name never came: open it as best it can
                self._open_call(call, out)
        for call in self._open_calls:
            assert call.index is not None
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=call.id,
                    output_index=call.index,
                    name=call.name or "",
                    arguments=call.arguments,
                )
            )
            item = self._output[call.index] = function_call_item(call.id, call.call_id or "", call.name or "", call.arguments)
            out.append(self._event("response.output_item.done", output_index=call.index, item=item))
        self._open_calls = []
        self._calls = {key: call for key, call in self._calls.items() if call.index is None}

    def _next_index(self) -> int:
        return len(self._output)

    def _end(self, out: list[bytes]) -> None:
        self._close_message(out)
        self._close_calls(out)
        final = self._response(
            "completed", output=self._output, usage=chat_usage_to_responses(self._usage), finish_reason=self._finish_reason
        )
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=final))
        self.final = final
        self.done = True
