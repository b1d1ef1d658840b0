"""The fake OpenAI upstream's scripted agent on chat completions (model `fake-agent`; see fake_openai.py).

The wire format follows the public OpenAI API reference:
  https://platform.openai.com/docs/api-reference/chat/create     (assistant `tool_calls`, `tool` messages)
  https://platform.openai.com/docs/api-reference/chat/streaming  (tool call deltas: index, id, name, then
                                                                  argument fragments; finish_reason tool_calls)

It behaves as the Responses API's `fake-agent` does (fake_openai_responses.py), for the tools a
coding agent offers on chat: when the last message is a `tool` message, it answers the text
"The tool printed: <its content>" (completion_tokens = its words); otherwise, when function tools
are offered, it calls one of them with a command that prints "hello-from-tool": `Bash` (Claude
Code's shell tool) with {"command": ...}, else `exec_command` or the first tool with {"cmd": ...}
(completion_tokens = FUNCTION_CALL_TOKENS); else it answers as any chat model does (None here).
prompt_tokens are counted as for every chat call (fake_openai_payloads.count_prompt).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.fake_openai_payloads import ChunkWriter, chat_usage, count_prompt, encode_json, new_completion_id
from bench.fake_openai_responses import AGENT_MODEL, FUNCTION_CALL_TOKENS

COMMAND = "echo hello-from-tool"
_ARGUMENTS = {"Bash": {"command": COMMAND, "description": "Print a greeting"}}
_DEFAULT_ARGUMENTS = {"cmd": COMMAND}
_PREFERRED = ("Bash", "exec_command")


@dataclass
class AgentTurn:
    """What the agent answers: a text, or one tool call (name, JSON arguments, id)."""

    text: str | None
    call: tuple[str, str, str] | None
    usage: dict


def _tool_names(body: dict) -> list[str]:
    names = []
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def agent_turn(body: dict) -> AgentTurn | None:
    """The agent's answer to a chat body, or None when it answers as a plain chat model."""
    if body.get("model") != AGENT_MODEL:
        return None
    messages = body.get("messages")
    prompt_tokens, cached = count_prompt(messages)
    assert isinstance(messages, list)  # (count_prompt refused anything else)
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "tool":
        text = f"The tool printed: {_content_text(last.get('content')).strip()}"
        return AgentTurn(text, None, chat_usage(prompt_tokens, len(text.split()), cached))
    names = _tool_names(body)
    if not names:
        return None
    name = next((n for n in _PREFERRED if n in names), names[0])
    arguments = encode_json(_ARGUMENTS.get(name, _DEFAULT_ARGUMENTS)).decode()
    call = (name, arguments, "call_" + os.urandom(8).hex())
    return AgentTurn(None, call, chat_usage(prompt_tokens, FUNCTION_CALL_TOKENS, cached))


def _message(turn: AgentTurn) -> dict:
    if turn.call is None:
        return {"role": "assistant", "content": turn.text, "refusal": None, "annotations": []}
    name, arguments, call_id = turn.call
    tool_call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "content": None, "refusal": None, "annotations": [], "tool_calls": [tool_call]}


def whole(model: str, turn: AgentTurn) -> bytes:
    """The chat.completion document of the agent's turn."""
    return encode_json(
        {
            "id": new_completion_id(),
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": _message(turn),
                    "logprobs": None,
                    "finish_reason": "stop" if turn.call is None else "tool_calls",
                }
            ],
            "usage": turn.usage,
        }
    )


def events(model: str, turn: AgentTurn, include_usage: bool) -> list[bytes]:
    """The stream of the agent's turn: the role, the text or the tool call (name first, then its
    arguments in pieces), the finish reason, the usage when asked for, and [DONE]."""
    chunks = ChunkWriter(model, include_usage)
    out = [chunks.delta({"role": "assistant", "content": None if turn.call else ""})]
    if turn.call is None:
        out.extend(chunks.delta({"content": word if i == 0 else " " + word}) for i, word in enumerate((turn.text or "").split()))
    else:
        name, arguments, call_id = turn.call
        head = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        out.append(chunks.delta({"tool_calls": [head]}))
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            out.append(chunks.delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    tail = chunks.delta({}, "stop" if turn.call is None else "tool_calls")
    if include_usage:
        tail += chunks.usage(turn.usage)
    out.append(tail + b"data: [DONE]\n\n")
    return out
