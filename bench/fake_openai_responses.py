"""Deterministic payloads of the fake OpenAI upstream's Responses API (see fake_openai.py).

The wire format follows the public OpenAI API reference:
  https://platform.openai.com/docs/api-reference/responses/create     (request, the response object, usage)
  https://platform.openai.com/docs/api-reference/responses-streaming  (typed SSE events with sequence_number)

Like the real API it refuses a `function_call_output` that answers no `function_call` before it
in the input, and a `previous_response_id` (the fake stores nothing: as with `store: false`, it
knows no previous response).

Token accounting (tests compare usage rows against it):
  input_tokens  = words of the instructions and of every input text (message contents, function
                  call arguments, function call outputs) + the number of input items
                  (+ 1 with instructions)
  cached_tokens = K when an input text contains "cached:K" (at most input_tokens)
  reply: "w0 w1 ... w{n-1}", n = max_output_tokens if given else 8 (capped at 2000); status
         incomplete (max_output_tokens) when n = max_output_tokens
  reasoning_tokens = R when an input text contains "reasoning:R": part of output_tokens
  output_tokens = n (+ R)
Model `fake-agent` behaves as a coding agent does: when the last input item is a
`function_call_output`, it answers the text "The tool printed: <output>" (output_tokens = its
words); otherwise, when function tools are offered, it calls `exec_command` (or the first function
tool) with {"cmd": "echo hello-from-tool"} (output_tokens = FUNCTION_CALL_TOKENS); else as above.
`fake-stream-fail` streams three words, then drops the connection.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.fake_openai_payloads import DEFAULT_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS, WORDS, BadRequest, encode_json

AGENT_MODEL = "fake-agent"
AGENT_TOOL = "exec_command"
AGENT_ARGUMENTS = {"cmd": "echo hello-from-tool"}
FUNCTION_CALL_TOKENS = 12
STREAM_FAIL_AFTER_WORDS = 3
_CACHED_RE = re.compile(r"cached:(\d+)")
_REASONING_RE = re.compile(r"reasoning:(\d+)")
_TAG = os.urandom(6).hex()
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{_TAG}{next(_ids):020x}"


def _item_type(item: dict) -> str:
    return item.get("type") or ("message" if "role" in item else "")


def _texts(item: dict) -> list[str]:
    kind = _item_type(item)
    if kind == "message":
        content = item.get("content")
        if isinstance(content, str):
            return [content]
        return [p["text"] for p in content or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
    if kind == "function_call":
        return [str(item.get("arguments", ""))]
    if kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, str):
            return [output]
        return [p["text"] for p in output or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


def input_items(body: dict) -> list[dict]:
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise BadRequest("Missing required parameter: 'input'.", "input")
    if not all(isinstance(item, dict) for item in value):
        raise BadRequest("Invalid type for 'input': each item must be an object.", "input")
    return value


def check_request(body: dict) -> list[dict]:
    """The input items, checked as the real API checks them."""
    if body.get("previous_response_id"):
        raise BadRequest(f"Previous response with id '{body['previous_response_id']}' not found.", "previous_response_id")
    items = input_items(body)
    calls: set[str] = set()
    for i, item in enumerate(items):
        kind = _item_type(item)
        if kind == "function_call":
            calls.add(str(item.get("call_id")))
        elif kind == "function_call_output" and item.get("call_id") not in calls:
            raise BadRequest(f"No tool call found for function call output with call_id {item.get('call_id')}.", f"input[{i}]")
        elif kind == "message" and item.get("role") not in ("user", "assistant", "system", "developer"):
            raise BadRequest(f"Invalid value: '{item.get('role')}'.", f"input[{i}].role")
    return items


@dataclass
class Reply:
    """What the fake answers: text words or a function call, and the usage."""

    text: str = ""
    call: dict | None = None
    incomplete: bool = False
    usage: dict = field(default_factory=dict)


def plan_reply(body: dict, items: list[dict]) -> Reply:
    texts = [t for item in items for t in _texts(item)]
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        texts.append(instructions)
    words = sum(len(t.split()) for t in texts)
    input_tokens = words + len(items) + (1 if isinstance(instructions, str) else 0)
    joined = " ".join(texts)
    cached = int(m.group(1)) if (m := _CACHED_RE.search(joined)) else 0
    reasoning = int(m.group(1)) if (m := _REASONING_RE.search(joined)) else 0
    reply = Reply()
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    last = items[-1] if items else {}
    if body.get("model") == AGENT_MODEL and _item_type(last) == "function_call_output":
        reply.text = "The tool printed: " + " ".join(_texts(last)).strip()
        output_tokens = len(reply.text.split())
    elif body.get("model") == AGENT_MODEL and tools:
        name = next((t["name"] for t in tools if t.get("name") == AGENT_TOOL), tools[0].get("name", ""))
        reply.call = {"name": name, "arguments": encode_json(AGENT_ARGUMENTS).decode(), "call_id": new_id("call")}
        output_tokens = FUNCTION_CALL_TOKENS
    else:
        limit = body.get("max_output_tokens")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 16):
            raise BadRequest("Invalid 'max_output_tokens': integer below minimum value (16).", "max_output_tokens")
        n = min(limit, MAX_COMPLETION_TOKENS) if limit is not None else DEFAULT_COMPLETION_TOKENS
        reply.text = " ".join(WORDS[:n])
        reply.incomplete = limit is not None and n == limit
        output_tokens = n
    reply.usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": min(cached, input_tokens)},
        "output_tokens": output_tokens + reasoning,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens + reasoning,
    }
    return reply


def message_item(item_id: str, text: str, status: str = "completed") -> dict:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def call_item(item_id: str, call: dict, arguments: str, status: str = "completed") -> dict:
    return {"id": item_id, "type": "function_call", "status": status, **call, "arguments": arguments}


class ResponseWriter:
    """The response object and the stream events of one answer."""

    def __init__(self, body: dict, reply: Reply) -> None:
        self.body = body
        self.reply = reply
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.item_id = new_id("fc" if reply.call else "msg")
        self._seq = itertools.count()

    def response(self, status: str, output: list[dict], usage: dict | None) -> dict:
        body = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def final_item(self) -> dict:
        reply = self.reply
        if reply.call:
            return call_item(self.item_id, reply.call, reply.call["arguments"])
        return message_item(self.item_id, reply.text)

    def whole(self) -> bytes:
        status = "incomplete" if self.reply.incomplete else "completed"
        return encode_json(self.response(status, [self.final_item()], self.reply.usage))

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, **fields, "sequence_number": next(self._seq)}
        return b"event: " + kind.encode() + b"\ndata: " + encode_json(data) + b"\n\n"

    def events(self, words_before_drop: int | None = None) -> Iterator[bytes]:
        """Every event of the streamed answer; with `words_before_drop`, only its first words."""
        reply = self.reply
        yield self.event("response.created", response=self.response("in_progress", [], None))
        yield self.event("response.in_progress", response=self.response("in_progress", [], None))
        where = {"item_id": self.item_id, "output_index": 0}
        if reply.call:
            yield self.event(
                "response.output_item.added", output_index=0, item=call_item(self.item_id, reply.call, "", "in_progress")
            )
            arguments = reply.call["arguments"]
            for piece in (arguments[:8], arguments[8:]):
                yield self.event("response.function_call_arguments.delta", **where, delta=piece)
            yield self.event("response.function_call_arguments.done", **where, arguments=arguments)
        else:
            yield self.event("response.output_item.added", output_index=0, item=message_item(self.item_id, "", "in_progress"))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield self.event("response.content_part.added", **where, content_index=0, part=part)
            words = reply.text.split(" ") if reply.text else []
            for i, word in enumerate(words[:words_before_drop] if words_before_drop is not None else words):
                yield self.event(
                    "response.output_text.delta", **where, content_index=0, delta=word if i == 0 else " " + word, logprobs=[]
                )
            if words_before_drop is not None:
                return
            yield self.event("response.output_text.done", **where, content_index=0, text=reply.text, logprobs=[])
            yield self.event("response.content_part.done", **where, content_index=0, part={**part, "text": reply.text})
        yield self.event("response.output_item.done", output_index=0, item=self.final_item())
        status = "incomplete" if reply.incomplete else "completed"
        yield self.event(f"response.{status}", response=self.response(status, [self.final_item()], reply.usage))
