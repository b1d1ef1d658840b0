"""What the admin-API e2e modules share besides their fixtures (conftest.py): the config of their
three edges, the calls they make and the keys they were given."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import httpx
import yaml

from tests.e2e.stack import MASTER_KEY, Stack, write_config
from tests.waiting import eventually_sync

PREFIX = "e2ekeys"
HELLO = [{"role": "user", "content": "Hello, how are you?"}]

# Every plaintext key the admin-API modules are given: none of them may end up in KV, a log line or ClickHouse.
PLAINTEXTS: list[str] = []

# seed 003, "Upperbound /key/generate params" and "Default /key/generate params".
UPPER_BOUNDS = {"max_budget": 100, "duration": "30d", "tpm_limit": 1000}
DEFAULTS = {
    "max_budget": 1.5,
    "models": ["gpt-3.5-turbo"],
    "duration": None,  # "blank means null"
    "metadata": {"setting": "default"},
    "team_id": "core-infra",
}
TEAMS = [
    {"team_id": "litellm-dev", "models": ["gpt-3.5-turbo"]},
    {"team_id": "beta-team", "models": ["beta-models"]},
]


def write_keys_config(path: Path, upstream_base: str, litellm_settings: dict) -> Path:
    """The e2e config plus seed 003's model groups: access groups and the free/paid tiers."""
    config = yaml.safe_load(write_config(path, upstream_base).read_text())

    def deployment(name: str, upstream: str, groups: list[str] | None = None) -> dict:
        entry = {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{upstream}",
                "api_base": upstream_base,
                "api_key": "os.environ/E2E_UPSTREAM_KEY",
            },
        }
        if groups:
            entry["model_info"] = {"access_groups": groups}
        return entry

    config["model_list"] += [
        deployment("text-embedding-ada-002", "text-embedding-3-small", ["beta-models"]),
        deployment("beta-chat", "gpt-4o-mini", ["beta-models", "cheap-models"]),
        deployment("my-free-tier", "gpt-4o-mini"),
        deployment("my-free-tier", "bench-model"),
        deployment("my-paid-tier", "gpt-4o"),
    ]
    config["litellm_settings"] = {"default_team_settings": TEAMS, **litellm_settings}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- helpers ---------------------------------------------------------------------------------


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def admin(http, stack, path: str, body: dict | None = None, key: str = MASTER_KEY, base: str | None = None):
    return http.post(f"{base or stack.base_url}{path}", headers=auth(key), json=body or {})


def generate(http, stack, base: str | None = None, **params) -> dict:
    resp = admin(http, stack, "/key/generate", params, base=base)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    PLAINTEXTS.append(body["key"])
    return body


def info(http, stack, key: str, caller: str = MASTER_KEY) -> httpx.Response:
    return http.get(f"{stack.base_url}/key/info", params={"key": key}, headers=auth(caller))


def chat(http, base: str, key: str, model: str = "gpt-4") -> httpx.Response:
    return http.post(f"{base}/v1/chat/completions", headers=auth(key), json={"model": model, "messages": HELLO, "max_tokens": 3})


def models_of(http, base: str, key: str) -> set[str]:
    resp = http.get(f"{base}/v1/models", headers=auth(key))
    assert resp.status_code == 200, resp.text
    return {m["id"] for m in resp.json()["data"]}


def known_on(http, base: str, key: str) -> None:
    """Wait until the edge at `base` takes a key made on another edge: edges learn of a new key
    through their KV watch, a few ms apart (test_revocation shows the race)."""
    eventually_sync(
        lambda: http.get(f"{base}/v1/models", headers=auth(key)).status_code == 200,
        "the edge to take the key",
        timeout=2,
        interval=0.005,
    )


def error_of(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code, error
    return error


def refused(resp: httpx.Response, key: str, why: str) -> None:
    """401 invalid_api_key saying why, never echoing the key."""
    error = error_of(resp, 401, "invalid_api_key")
    assert why in error["message"].lower(), error
    assert key not in resp.text and key[3:] not in resp.text


def when(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


# --- /key/generate and /key/info -------------------------------------------------------------


def start_spend_stack(root: Path, nats_url: str, prefix: str, upstream, config: Path) -> Stack:
    """A one-edge stack on `config`, returned once metering answers spend queries (the admin
    modules that read spend wait for that); stopped again if it does not come up."""
    stack = Stack(root, nats_url, prefix, upstream, {"LLMGW_CONFIG": str(config)})
    try:
        stack.start()
        eventually_sync(
            lambda: httpx.get(f"{stack.base_url}/spend/logs", headers=auth(MASTER_KEY), timeout=15).status_code == 200,
            "metering to answer spend queries",
            timeout=60,
        )
    except BaseException:
        stack.stop()
        raise
    return stack


def uid(prefix: str) -> str:
    """A name no other test of the run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
