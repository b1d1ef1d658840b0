"""The Claude Code CLI against a whole gateway, everything in one network namespace that has only
loopback (the test starts this module there: tests/e2e/netns.py).

    python -m tests.e2e.claude_code_in_netns <claude binary> <work directory>

It starts nats-server, the fake OpenAI upstream and the gateway, makes a virtual key, and runs
`claude -p` with its default model settings: `ANTHROPIC_BASE_URL` at llmgw, the key as
`ANTHROPIC_API_KEY`, every model name it asks for (`claude-*`: its opus, sonnet and haiku) served by
the fake's scripted agent through `/v1/messages` translated to chat completions. HOME is a
directory of its own; telemetry, error reports and the auto-updater are off. It waits for the
usage rows of every request Claude Code made and prints `RESULT <json>`: Claude Code's exit code
and JSON output, the fake's statistics and the rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.netns import offline_gateway, print_result, usage_rows_of
from tests.e2e.responses_stack import INPUT_PRICE, OUTPUT_PRICE, new_key

MODEL_GROUP = "claude-*"  # whatever Claude Code's defaults are called this release
PROMPT = "Run echo hello-from-tool in the shell and tell me the output"
CLAUDE_TIMEOUT = 240.0


def gateway_config(upstream_base: str) -> str:
    return "\n".join(
        [
            "model_list:",
            f'  - model_name: "{MODEL_GROUP}"',
            "    params:",
            "      model: openai/fake-agent",
            f"      api_base: {upstream_base}",
            "      api_key: os.environ/E2E_UPSTREAM_KEY",
            f"      input_cost_per_token: {INPUT_PRICE}",
            f"      output_cost_per_token: {OUTPUT_PRICE}",
            "general_settings:",
            "  master_key: os.environ/E2E_MASTER_KEY",
            "",
        ]
    )


def run_claude(claude: str, work: Path, base_url: str, key: str) -> subprocess.CompletedProcess[str]:
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    project = work / "project"
    project.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": key,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    # (--dangerously-skip-permissions is refused to root, which the namespace's user is: the
    # shell tool is allowed by name instead)
    return subprocess.run(
        [claude, "-p", PROMPT, "--output-format", "json", "--allowedTools", "Bash"],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLAUDE_TIMEOUT,
    )


def main(claude: str, work: Path) -> dict:
    with offline_gateway(work, "claudecode", gateway_config) as (stack, upstream):
        key = new_key(stack, key_alias="claude-code")
        done = run_claude(claude, work, stack.base_url, key)
        calls = upstream.stats()["by_model"].get("fake-agent", 0)
        try:
            output = json.loads(done.stdout)
        except ValueError:
            output = {"unreadable": done.stdout[-3000:]}
        return {
            "returncode": done.returncode,
            "output": output,
            "stderr": done.stderr[-3000:],
            "fake": upstream.stats(),
            "rows": usage_rows_of(stack, "claude-code", calls),
            "logs": stack.logs()[-6000:] if done.returncode else "",
        }


if __name__ == "__main__":
    print_result(main(sys.argv[1], Path(sys.argv[2])))
