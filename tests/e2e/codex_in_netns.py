"""The Codex CLI against a whole gateway, everything in one network namespace that has only
loopback (the test starts this module there: tests/e2e/netns.py).

    python -m tests.e2e.codex_in_netns <codex binary> <work directory>

It starts nats-server, the fake OpenAI upstream and the gateway (edge, worker, metering), makes a
virtual key, runs `codex exec --json` with a model provider at llmgw's `/v1` (`wire_api =
"responses"`), waits for the usage rows of every request Codex made, and prints one line,
`RESULT <json>`: Codex's exit code and events, the fake's statistics and the usage rows. Then it
stops everything it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.netns import offline_gateway, print_result, usage_rows_of
from tests.e2e.responses_stack import INPUT_PRICE, OUTPUT_PRICE, new_key

CODEX_MODEL = "gpt-4o"  # a name Codex does not know: it offers plain function tools
PROMPT = "Run echo hello-from-tool in the shell and tell me the output"
CODEX_TIMEOUT = 240.0


def gateway_config(upstream_base: str) -> str:
    return "\n".join(
        [
            "model_list:",
            f"  - model_name: {CODEX_MODEL}",
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


def codex_config(base_url: str) -> str:
    return "\n".join(
        [
            f'model = "{CODEX_MODEL}"',
            'model_provider = "llmgw"',
            'web_search = "disabled"',
            "[analytics]",
            "enabled = false",
            "[features]",
            "plugins = false",
            "multi_agent = false",
            "goals = false",
            "[model_providers.llmgw]",
            'name = "llmgw"',
            f'base_url = "{base_url}/v1"',
            'env_key = "LLMGW_API_KEY"',
            'wire_api = "responses"',
            "",
        ]
    )


def run_codex(codex: str, work: Path, base_url: str, key: str) -> subprocess.CompletedProcess[str]:
    home = work / "home"
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(codex_config(base_url))
    project = work / "project"
    project.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "CODEX_HOME": str(codex_home), "LLMGW_API_KEY": key}
    return subprocess.run(
        [codex, "exec", "--skip-git-repo-check", "--json", PROMPT],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CODEX_TIMEOUT,
    )


def main(codex: str, work: Path) -> dict:
    with offline_gateway(work, "codex", gateway_config) as (stack, upstream):
        key = new_key(stack, key_alias="codex")
        done = run_codex(codex, work, stack.base_url, key)
        calls = upstream.stats()["by_model"].get("fake-agent", 0)
        return {
            "returncode": done.returncode,
            "events": [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")],
            "stderr": done.stderr[-3000:],
            "fake": upstream.stats(),
            "rows": usage_rows_of(stack, "codex", calls),
        }


if __name__ == "__main__":
    print_result(main(sys.argv[1], Path(sys.argv[2])))
