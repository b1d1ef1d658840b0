"""Settings an admin changes while the gateway runs: provider credentials, system prompts; and
the `llmgw keys` command line over the same API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import nats
import openai
import pytest

from llmgw.contracts import Subjects
from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "Hello there"}]  # 2 words + 1 message = 3 prompt tokens


def admin_post(stack, path: str, body: dict) -> httpx.Response:
    return httpx.post(stack.base_url + path, json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10)


async def _bucket_values(nats_url: str, bucket: str) -> list[bytes]:
    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(bucket)
        try:
            keys = await kv.keys()
        except Exception:
            return []
        return [(await kv.get(k)).value for k in keys]
    finally:
        await nc.close()


def test_provider_credential_rotates_at_run_time_and_is_never_shown(stack):
    client = stack.client()
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="rotating", messages=HELLO)
    assert err.value.status_code == 502  # the upstream refused the stale credential

    resp = admin_post(stack, "/credentials/set", {"model_name": "rotating", "api_key": UPSTREAM_KEY})
    assert resp.status_code == 200 and UPSTREAM_KEY not in resp.text

    def answered():
        try:
            return client.chat.completions.create(model="rotating", messages=HELLO).choices[0].message.content
        except openai.APIStatusError:
            return None

    assert eventually_sync(answered, "the workers to use the new credential", timeout=10)  # no restart needed
    listing = httpx.get(stack.base_url + "/credentials", headers={"Authorization": f"Bearer {MASTER_KEY}"}).text
    assert UPSTREAM_KEY not in listing and UPSTREAM_KEY[-4:] in listing
    stored = asyncio.run(_bucket_values(stack.nats_url, Subjects(stack.prefix).settings_bucket))
    assert stored and all(UPSTREAM_KEY.encode() not in v for v in stored)  # encrypted at rest
    assert UPSTREAM_KEY not in stack.logs()


def test_system_prompts_are_injected_globally_per_team_and_per_key(stack):
    def prompt_tokens(key: str) -> int:
        c = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
        return c.chat.completions.create(model="gpt-4", messages=HELLO).usage.prompt_tokens

    team = admin_post(stack, "/team/new", {"team_id": "prompted", "system_prompt": "Team rule one."})
    assert team.status_code == 200
    key = admin_post(stack, "/key/generate", {"team_id": "prompted", "system_prompt": "Key rule."}).json()["key"]
    plain = admin_post(stack, "/key/generate", {}).json()["key"]
    assert prompt_tokens(plain) == 3
    # team prompt: 3 words + 1 message; key prompt: 2 words + 1 message
    assert prompt_tokens(key) == 3 + 4 + 3
    assert admin_post(stack, "/policy/system_prompt", {"system_prompt": "Be kind."}).status_code == 200
    try:
        assert prompt_tokens(plain) == 3 + 3
        assert prompt_tokens(key) == 3 + 3 + 4 + 3
    finally:
        admin_post(stack, "/policy/system_prompt", {"system_prompt": None})
    assert prompt_tokens(plain) == 3


def test_command_line_manages_keys_on_a_running_gateway(stack):
    env = {**os.environ, "LLMGW_URL": stack.base_url, "LLMGW_MASTER_KEY": MASTER_KEY}

    def llmgw(*args: str) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "llmgw_cli", *args, "--json"], env=env, capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr + out.stdout
        return json.loads(out.stdout)

    created = llmgw("keys", "create", "--models", "gpt-4", "--alias", "from-cli", "--duration", "1h")
    key = created["key"]
    sdk = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    assert sdk.chat.completions.create(model="gpt-4", messages=HELLO).choices[0].message.content
    assert llmgw("keys", "info", key)["info"]["key_alias"] == "from-cli"
    assert created["token"] in [k["token"] for k in llmgw("keys", "list")["keys"]]
    llmgw("keys", "revoke", key)
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="gpt-4", messages=HELLO)
