"""Helpers of the organization and tag modules: plain HTTP calls as LiteLLM's docs show them,
records made with a unique name, and a chat through the openai SDK."""

from __future__ import annotations

import httpx
import openai

from tests.e2e.admin.support import HELLO, PLAINTEXTS, admin, auth, uid
from tests.e2e.stack import MASTER_KEY


def call(http, stack, method: str, path: str, body: dict | None = None, key: str | None = MASTER_KEY) -> httpx.Response:
    return http.request(method, f"{stack.base_url}{path}", headers=auth(key) if key else {}, json=body)


def get(http, stack, path: str, key: str | None = MASTER_KEY, **params) -> httpx.Response:
    return http.get(f"{stack.base_url}{path}", params=params, headers=auth(key) if key else {})


def new_org(http, stack, **params) -> dict:
    resp = admin(http, stack, "/organization/new", {"organization_alias": uid("org"), **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


def new_user(http, stack, **params) -> dict:
    resp = admin(http, stack, "/user/new", {"user_id": uid("user"), **params})
    assert resp.status_code == 200, resp.text
    PLAINTEXTS.append(resp.json()["key"])
    return resp.json()


def new_team(http, stack, key: str = MASTER_KEY, **params) -> httpx.Response:
    return admin(http, stack, "/team/new", {"team_id": uid("team"), **params}, key=key)


def client(stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{stack.base_url}/v1", max_retries=0)


def sdk_chat(stack, key: str, max_tokens: int = 5, **extra) -> str:
    """A chat request through the openai SDK; its request id (x-request-id)."""
    raw = client(stack, key).chat.completions.with_raw_response.create(
        model="gpt-4", messages=HELLO, max_tokens=max_tokens, **extra
    )
    assert raw.parse().choices
    return raw.headers["x-request-id"]
