"""What the fake Bedrock runtime's Converse answers (see fake_bedrock.py): the request validated the
way Bedrock does, its tokens counted, the reply planned (words, or one tool call):
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
The token rules are in fake_bedrock.py's description.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from bench.fake_bedrock_errors import invalid

DEFAULT_COMPLETION_TOKENS = 8
MAX_COMPLETION_TOKENS = 2000
TOOL_USE_TOKENS = 10

_CACHE = re.compile(r"cached:(\d+)")
_CACHE_WRITE = re.compile(r"cachewrite:(\d+)")


def _texts(blocks: list) -> list[str]:
    out = []
    for block in blocks:
        if not isinstance(block, dict):
            raise invalid("each content block must be an object")
        if "text" in block:
            if not isinstance(block["text"], str) or not block["text"].strip():
                raise invalid("The text field in the ContentBlock object is blank. Add text to the text field, and try again.")
            out.append(block["text"])
        elif "toolResult" in block:
            out.extend(_texts(block["toolResult"].get("content") or []))
    return out


@dataclass
class Plan:
    """What one Converse call answers."""

    input_tokens: int
    cache_read: int
    cache_write: int
    words: int = 0
    stop_reason: str = "end_turn"
    tool: str | None = None

    @property
    def output_tokens(self) -> int:
        return TOOL_USE_TOKENS if self.tool else self.words

    def usage(self) -> dict:
        usage = {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.cache_read + self.cache_write + self.output_tokens,
        }
        if self.cache_read or self.cache_write:
            usage["cacheReadInputTokens"], usage["cacheWriteInputTokens"] = self.cache_read, self.cache_write
        return usage


def plan_converse(body: dict) -> Plan:
    """Validate a Converse request the way Bedrock does and decide the answer."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("The messages field is required and must not be empty.")
    tools = ((body.get("toolConfig") or {}).get("tools")) or []
    texts = [s["text"] for s in body.get("system") or [] if isinstance(s, dict) and isinstance(s.get("text"), str)]
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), list):
            raise invalid(f"messages.{i} must have a role (user or assistant) and a content list")
        if m["role"] != ("user" if i % 2 == 0 else "assistant"):
            raise invalid("A conversation must start with a user message and alternate between user and assistant roles.")
        if any(isinstance(b, dict) and ("toolUse" in b or "toolResult" in b) for b in m["content"]) and not tools:
            raise invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
        texts.extend(_texts(m["content"]))
    total = sum(len(t.split()) for t in texts) + len(messages)
    joined = " ".join(texts)
    read_match, write_match = _CACHE.search(joined), _CACHE_WRITE.search(joined)
    read = min(int(read_match.group(1)), total) if read_match else 0
    write = min(int(write_match.group(1)), total - read) if write_match else 0
    plan = Plan(total - read - write, read, write)
    limit = (body.get("inferenceConfig") or {}).get("maxTokens")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise invalid("The maximum tokens you requested must be at least 1.")
    last = messages[-1]["content"]
    if tools and not any("toolResult" in b for b in last) and "weather" in " ".join(_texts(last)).lower():
        choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
        plan.tool = (choice.get("tool") or {}).get("name") or tools[0]["toolSpec"]["name"]
        plan.stop_reason = "tool_use"
        return plan
    plan.words = min(limit or DEFAULT_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS)
    plan.stop_reason = "max_tokens" if plan.words == limit else "end_turn"
    return plan


def reply_text(n: int) -> str:
    """The answer of n words, "w0 w1 ... w{n-1}"."""
    return " ".join(f"w{i}" for i in range(n))


def tool_use_id() -> str:
    """A new toolUseId, shaped as Bedrock's."""
    return "tooluse_" + uuid.uuid4().hex[:22]
