"""The Claude Code CLI (`claude -p`, installed from npm by the test run: tests/npm_packages.py) against
llmgw's `/v1/messages` with its default model settings, every model name it asks for served by the
fake OpenAI upstream's scripted agent: it completes the prompt with one round trip through its
shell tool (Bash), and every request it made is metered with the tokens the fake reported. Claude
Code reaches for outside hosts, so it runs, with the whole gateway it talks to, in a network
namespace that has only loopback (tests/e2e/netns.py, tests/e2e/claude_code_in_netns.py).

The newest release is used: its npm package brings Claude Code as a native binary (the
`-linux-x64` optional package), so the package's `node >= 22` does not hold it back on Node 20,
which only runs its install script."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.netns import run_in_netns, unshare_command
from tests.e2e.responses_stack import cost_of
from tests.npm_packages import npm_package

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CLAUDE_CODE = ("@anthropic-ai/claude-code", "2.1.332")


def test_claude_code_completes_a_tool_round_trip_through_llmgw(tmp_path: Path) -> None:
    unshare_command()  # (skips before the install where no namespace can be made)
    claude = npm_package(*CLAUDE_CODE) / "node_modules" / ".bin" / "claude"
    result = run_in_netns("tests.e2e.claude_code_in_netns", str(claude), str(tmp_path))
    assert result["returncode"] == 0, (result["stderr"], result["output"], result["logs"])
    output = result["output"]
    assert output["type"] == "result" and output["is_error"] is False, output
    assert "hello-from-tool" in output["result"], output
    # The fake's agent asked for Claude Code's shell tool, and got the command's output back.
    agent, last = result["fake"]["agent"], result["fake"]["last_request"]
    assert agent["calls"] == ["Bash"] and agent["outputs"] == ["The tool printed: hello-from-tool"]
    tool_message = last["messages"][-1]
    assert tool_message["role"] == "tool" and "hello-from-tool" in tool_message["content"]
    # Claude Code's own system message inside `messages` arrived as a system message, not refused.
    assert [m["role"] for m in last["messages"]].count("system") >= 2
    # One usage row per request Claude Code made: the tokens the fake reported, cost = tokens x price.
    rows = result["rows"]
    assert len(rows) == result["fake"]["by_model"]["fake-agent"] == len(agent["usage"]) >= 2
    assert len({r["request_id"] for r in rows}) == len(rows)
    assert {(r["status"], r["operation"], r["provider"]) for r in rows} == {("success", "chat", "openai")}
    assert all(r["model_group"].startswith("claude-") for r in rows)
    reported = sorted((u["prompt_tokens"], u["completion_tokens"]) for u in agent["usage"])
    assert sorted((r["prompt_tokens"], r["completion_tokens"]) for r in rows) == reported
    for row in rows:
        assert row["cost"] == pytest.approx(cost_of(row["prompt_tokens"], row["completion_tokens"]), abs=1e-9)
    # What Claude Code was told it used is what was metered.
    assert output["usage"]["input_tokens"] == sum(r["prompt_tokens"] for r in rows)
    assert output["usage"]["output_tokens"] == sum(r["completion_tokens"] for r in rows)
