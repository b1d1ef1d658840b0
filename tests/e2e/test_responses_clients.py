"""Clients other than the Python SDK against llmgw's Responses API, installed from npm by the test
run (tests/npm_packages.py): the Node `openai` SDK (a streamed chat completion and streamed
Responses calls, tests/node/openai_streams.js) and the Codex CLI (`codex exec`, a model provider
with `wire_api = "responses"` at llmgw's `/v1`), which completes a prompt with one tool round trip
against the fake OpenAI upstream's scripted agent. Codex reaches for outside hosts when it starts,
so it runs, with the whole gateway it talks to, in a network namespace that has only loopback
(tests/e2e/netns.py, tests/e2e/codex_in_netns.py). Every request is metered with the tokens the fake reported."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.netns import run_in_netns, unshare_command
from tests.e2e.responses_stack import ANTHROPIC_KEY, cost_of, new_key, start_stack
from tests.npm_packages import npm_package
from tests.procs import REPO, FakeUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NODE_OPENAI = ("openai", "7.59.0")
CODEX = ("@openai/codex", "0.171.0")
NODE_SCRIPT = REPO / "tests" / "node" / "openai_streams.js"


@pytest.fixture(scope="module")
def fake_anthropic(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("anthropic"), ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, fake_anthropic, tmp_path_factory: pytest.TempPathFactory):
    s = start_stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2eresponsesclients", upstream, fake_anthropic)
    yield s
    s.stop()


# ---- the Node openai SDK -------------------------------------------------------------------------


@pytest.mark.parametrize("responses_model", ["gpt-4o", "claude"])
def test_the_node_sdk_streams_chat_and_responses(stack, responses_model: str) -> None:
    package = npm_package(*NODE_OPENAI)
    key = new_key(stack)
    done = subprocess.run(
        ["node", str(NODE_SCRIPT), f"{stack.base_url}/v1", key, "gpt-4o", responses_model],
        env={**os.environ, "NODE_PATH": str(package / "node_modules")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    chat, responses = result["chat"], result["responses"]
    assert chat["text"] == "w0 w1 w2 w3 w4 w5 w6 w7" and chat["usage"]["completion_tokens"] == 8
    assert responses["types"][0] == "response.created" and responses["types"][-1] == "response.completed"
    assert responses["sequence"] == list(range(len(responses["sequence"])))
    assert responses["text"] == "w0 w1 w2 w3 w4 w5 w6 w7" == responses["final"]["output"][0]["content"][0]["text"]
    rows = stack.usage_rows([chat["request_id"], responses["request_id"]])
    row = rows[chat["request_id"]]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (chat["usage"]["prompt_tokens"], 8)
    usage = responses["final"]["usage"]
    row = rows[responses["request_id"]]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["input_tokens"], usage["output_tokens"])
    assert row["cost"] == pytest.approx(cost_of(usage["input_tokens"], usage["output_tokens"]), abs=1e-9)


# ---- the Codex CLI -------------------------------------------------------------------------------


def test_codex_exec_completes_a_tool_round_trip_through_llmgw(tmp_path: Path) -> None:
    unshare_command()  # (skips before the install where no namespace can be made)
    codex = npm_package(*CODEX) / "node_modules" / ".bin" / "codex"
    result = run_in_netns("tests.e2e.codex_in_netns", str(codex), str(tmp_path))
    assert result["returncode"] == 0, result["stderr"]
    events = result["events"]
    commands = [e["item"] for e in events if e.get("type") == "item.completed" and e["item"].get("type") == "command_execution"]
    assert commands and "hello-from-tool" in commands[0]["aggregated_output"], events
    messages = [
        e["item"]["text"] for e in events if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message"
    ]
    assert messages and "hello-from-tool" in messages[-1], events
    # The fake got the tool's output back, in the conversation Codex sent.
    sent = result["fake"]["last_responses"]
    assert sent["input"][-1]["type"] == "function_call_output" and "hello-from-tool" in sent["input"][-1]["output"]
    # One usage row per request Codex made, together the tokens the fake reported, at the config's prices.
    rows, reported = result["rows"], result["fake"]["responses_usage"]
    assert len(rows) == result["fake"]["by_model"]["fake-agent"] >= 2
    assert {(r["status"], r["operation"], r["provider"]) for r in rows} == {("success", "responses", "openai")}
    prompt, completion = sum(r["prompt_tokens"] for r in rows), sum(r["completion_tokens"] for r in rows)
    assert (prompt, completion) == (reported["input_tokens"], reported["output_tokens"])
    assert sum(r["cost"] for r in rows) == pytest.approx(cost_of(prompt, completion), abs=1e-8)
    turn = next(e for e in events if e.get("type") == "turn.completed")
    assert (turn["usage"]["input_tokens"], turn["usage"]["output_tokens"]) == (prompt, completion)
