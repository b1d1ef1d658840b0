"""The command line against a running gateway, as a person types it: tables, `--json`, keys by
alias, errors on stderr, a closed pipe, `llmgw sql FILE`, and money written as money."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY
from tests.procs import REPO

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def llmgw(stack):
    env = {**os.environ, "LLMGW_URL": stack.base_url, "LLMGW_MASTER_KEY": MASTER_KEY}
    bus = ["--nats-url", stack.nats_url, "--prefix", stack.prefix]

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [*args, *bus] if args[0] in ("sql", "usage") else list(args)
        done = subprocess.run(
            [sys.executable, "-m", "llmgw_cli", *argv], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        if check:
            assert done.returncode == 0, done.stderr + done.stdout
            assert done.stderr == "", done.stderr
        return done

    return run


def test_keys_create_shows_the_key_first_and_list_shows_aliases_and_masked_keys(llmgw, stack):
    created = llmgw("keys", "create", "--alias", "cli-table", "--models", "gpt-4", "--max-budget", "0.0000108").stdout
    first = created.splitlines()[0].split()
    assert first[0] == "key" and first[1].startswith("sk-") and len(first[1]) > 20
    key = first[1]
    assert "shown only now" in created and "$0.0000108" in created

    listing = llmgw("keys", "list").stdout
    row = next(line for line in listing.splitlines() if line.startswith("cli-table"))
    assert f"sk-...{key[-4:]}" in row and key not in listing  # masked, never the key itself
    assert "gpt-4" in row and "$0.0000108" in row and "e-0" not in listing
    assert listing.splitlines()[0].split()[:3] == ["alias", "key", "token"]

    keys = json.loads(llmgw("keys", "list", "--json").stdout)["keys"]
    mine = next(k for k in keys if k.get("key_alias") == "cli-table")
    assert mine["max_budget"] == 1.08e-05 and "key" not in mine


def test_commands_take_a_key_alias(llmgw, stack):
    key = json.loads(llmgw("keys", "create", "--alias", "cli-alias", "--json").stdout)["key"]
    sdk = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    assert sdk.chat.completions.create(model="gpt-4", messages=HELLO).choices

    info = llmgw("keys", "info", "cli-alias").stdout
    assert "alias" in info and "cli-alias" in info and f"sk-...{key[-4:]}" in info
    token = json.loads(llmgw("keys", "info", "cli-alias", "--json").stdout)["info"]["token"]
    assert json.loads(llmgw("keys", "info", token[:10], "--json").stdout)["info"]["key_alias"] == "cli-alias"

    assert re.search(r"^blocked +yes$", llmgw("keys", "block", "cli-alias").stdout, re.M)
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="gpt-4", messages=HELLO)
    llmgw("keys", "unblock", "cli-alias")
    assert llmgw("keys", "revoke", "cli-alias").stdout.startswith("revoked: ")
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="gpt-4", messages=HELLO)


def test_errors_go_to_stderr_with_a_non_zero_exit(llmgw):
    gone = llmgw("keys", "info", "no-such-alias", check=False)
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.strip() == "llmgw: no key has the alias or token 'no-such-alias' (`llmgw keys list` shows them)"

    refused = llmgw("keys", "create", "--max-budget", "-5", check=False)
    assert refused.returncode == 1 and "(HTTP 400)" in refused.stderr and "Traceback" not in refused.stderr

    wrong_flag = llmgw("keys", "list", "--max-budget", "3", check=False)
    assert wrong_flag.returncode == 2 and "unrecognized arguments: --max-budget" in wrong_flag.stderr

    env = {k: v for k, v in os.environ.items() if k != "LLMGW_MASTER_KEY"}
    no_key = subprocess.run(
        [sys.executable, "-m", "llmgw_cli", "keys", "list"], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert no_key.returncode == 1 and "LLMGW_MASTER_KEY=sk-..." in no_key.stderr


def test_a_closed_pipe_is_no_traceback(llmgw, stack):
    for n in range(3):
        llmgw("keys", "create", "--alias", f"pipe-{n}")
    env = {**os.environ, "LLMGW_URL": stack.base_url, "LLMGW_MASTER_KEY": MASTER_KEY}
    reader = subprocess.Popen(
        [sys.executable, "-m", "llmgw_cli", "keys", "list", "--json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader.stdout.close()  # (like `| head -1` gone before the answer is written)
    err = reader.stderr.read().decode()
    code = reader.wait(60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == 141


def test_sql_runs_a_file_and_names_its_missing_parameters(llmgw, stack):
    path = str(REPO / "metering" / "sql" / "top_keys_by_spend.sql")
    short = llmgw("sql", path, check=False)
    assert short.returncode == 2 and short.stdout == ""
    assert "--param days=..." in short.stderr and "how many days back, today included" in short.stderr
    assert "--param limit=..." in short.stderr and "how many keys" in short.stderr

    chat = httpx.post(
        f"{stack.base_url}/v1/chat/completions",
        json={"model": "gpt-4", "messages": HELLO},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
    )
    stack.usage_rows([chat.headers["x-request-id"]])
    table = llmgw("sql", path, "--param", "days=1", "--param", "limit=5").stdout
    assert table.splitlines()[0].split() == ["key_hash", "key_alias", "requests", "tokens", "cost"]
    assert "e-0" not in table


def test_money_is_written_as_money(llmgw, stack):
    out = llmgw("sql", "SELECT toFloat64(0.0000108) AS cost, toDecimal64(0.00000025, 9) AS price").stdout
    assert out.split()[:6] == ["cost", "price", "---------", "----------", "0.0000108", "0.00000025"]
    line = json.loads(llmgw("sql", "SELECT toFloat64(0.0000108) AS cost", "--json").stdout)
    assert line == {"cost": 1.08e-05}
    assert "0.0000108" in llmgw("sql", "SELECT toFloat64(0.0000108) AS cost", "--json").stdout

    made = json.loads(llmgw("keys", "create", "--alias", "money", "--max-budget", "0.0000108", "--json").stdout)
    raw = httpx.get(
        f"{stack.base_url}/key/info", params={"key": made["key"]}, headers={"Authorization": f"Bearer {MASTER_KEY}"}
    ).text
    assert '"max_budget":0.0000108' in raw and '"spend":0.0' in raw and "e-" not in raw
    for path in ("/key/list?return_full_object=true", "/spend/logs", "/global/spend/report?group_by=model"):
        text = httpx.get(f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {MASTER_KEY}"}).text
        assert '"spend":' in text, (path, text[:300])
        assert not re.search(r'"(spend|cost|total_spend|max_budget)":-?[0-9.]+[eE]', text), path
