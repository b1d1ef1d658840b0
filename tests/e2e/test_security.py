"""Security properties of the whole gateway, end to end: admin routes are for admins only, keys
and provider credentials are never stored in plaintext, no secret reaches a log line or a usage
row, CORS is off unless configured, and every answer of the model routes has a request id."""

from __future__ import annotations

import asyncio
import json

import httpx
import nats
import pytest

from llmgw.contracts import Subjects
from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY, Stack

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "Hello, how are you?"}]
ORIGIN = "https://app.example"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def cors_stack(nats_server, upstream, tmp_path_factory):
    s = Stack(
        tmp_path_factory.mktemp("corsstack"),
        nats_server.url,
        "e2esecuritycors",
        upstream,
        {"LLMGW_CORS_ORIGINS": f"{ORIGIN}, https://other.example"},
    ).start()
    yield s
    s.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def admin_post(http, stack, path: str, body: dict, key: str = MASTER_KEY) -> httpx.Response:
    return http.post(stack.base_url + path, json=body, headers=auth(key))


def new_key(http, stack, **params) -> dict:
    resp = admin_post(http, stack, "/key/generate", params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def new_user(http, stack, user_id: str, role: str) -> dict:
    resp = admin_post(http, stack, "/user/new", {"user_id": user_id, "user_role": role})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _raw_entries(nats_url: str, bucket: str) -> list[tuple[str, bytes]]:
    """Every message of a KV bucket's stream (current values, old revisions, delete markers):
    (subject, data)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.key_value(bucket)  # the bucket exists (raises otherwise)
        stream = f"KV_{bucket}"
        state = (await js.stream_info(stream)).state
        out = []
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except Exception:
                continue
            out.append((msg.subject, msg.data or b""))
        return out
    finally:
        await nc.close()


def raw_entries(stack, bucket: str) -> list[tuple[str, bytes]]:
    return asyncio.run(_raw_entries(stack.nats_url, bucket))


def assert_absent(secret: str, text: str, where: str) -> None:
    """Neither the secret nor its body without the `sk-` prefix appears in `text`."""
    assert secret not in text, f"{secret[:6]}... is in {where}"
    assert secret.removeprefix("sk-") not in text, f"{secret[:6]}... (without sk-) is in {where}"


# --- admin routes ---------------------------------------------------------------------------------------


ADMIN_CALLS = [
    ("/key/generate", {"key_alias": "intruder-key", "user_id": "intruder"}),  # (an internal user makes keys only for itself)
    ("/user/new", {"user_id": "intruder", "user_role": "admin"}),
    ("/team/new", {"team_id": "intruder-team"}),
    ("/credentials/set", {"model_name": "gpt-4", "api_key": "sk-intruder-credential-0000"}),
    ("/key/update", {"key": "sk-does-not-matter", "max_budget": 0}),
    ("/key/delete", {"keys": ["sk-does-not-matter"]}),
]


@pytest.mark.parametrize("role", [None, "app_user", "app_owner"], ids=["plain-key", "app-user", "app-owner"])
def test_admin_routes_refuse_a_key_that_is_not_an_admins(http, stack, role):
    if role is None:
        key = new_key(http, stack, key_alias=f"not-admin-{role}")["key"]
    else:
        key = new_user(http, stack, f"user-{role}", role)["key"]
    for path, body in ADMIN_CALLS:
        resp = admin_post(http, stack, path, body, key)
        assert resp.status_code in (401, 403), (path, resp.status_code, resp.text)
        assert resp.json()["error"]["code"] in ("invalid_api_key", "permission_denied"), (path, resp.text)
    # Nothing was done on the refused calls' behalf.
    assert http.get(stack.base_url + "/user/info", params={"user_id": "intruder"}, headers=auth(MASTER_KEY)).status_code == 404
    assert (
        http.get(stack.base_url + "/team/info", params={"team_id": "intruder-team"}, headers=auth(MASTER_KEY)).status_code == 404
    )
    keys = http.get(stack.base_url + "/key/list", params={"key_alias": "intruder-key"}, headers=auth(MASTER_KEY)).json()
    assert keys["total_count"] == 0
    # The key works where it should: it is a live key, refused for being no admin's.
    assert http.post(stack.base_url + CHAT, headers=auth(key), json={"model": "gpt-4", "messages": HELLO}).status_code == 200


def test_a_key_of_an_admin_user_may_use_the_admin_routes(http, stack):
    admin_key = new_user(http, stack, "security-admin", "admin")["key"]
    resp = admin_post(http, stack, "/team/new", {"team_id": "made-by-an-admin-user"}, admin_key)
    assert resp.status_code == 200, resp.text


def test_a_key_that_is_not_an_admins_may_only_look_itself_up(http, stack):
    mine, other = new_key(http, stack)["key"], new_key(http, stack)["key"]
    assert http.get(stack.base_url + "/key/info", params={"key": mine}, headers=auth(mine)).status_code == 200
    resp = http.get(stack.base_url + "/key/info", params={"key": other}, headers=auth(mine))
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "permission_denied"
    assert other not in resp.text


# --- secrets at rest ------------------------------------------------------------------------------------


def test_virtual_keys_are_stored_hashed(http, stack):
    generated = new_key(http, stack, key_alias="hashed-at-rest")
    user = new_user(http, stack, "hashed-user", "app_user")
    regenerated = admin_post(http, stack, "/key/regenerate", {"key": generated["key"]}).json()
    plaintexts = [generated["key"], user["key"], regenerated["key"]]
    assert all(k.startswith("sk-") for k in plaintexts)

    entries = raw_entries(stack, Subjects(stack.prefix).keys_bucket)
    dump = "\n".join(f"{subject} {data.decode(errors='replace')}" for subject, data in entries)
    assert generated["token"] in dump and regenerated["token"] in dump  # the dump holds the keys' records
    for key in plaintexts:
        assert_absent(key, dump, "the keys bucket")
    assert_absent(MASTER_KEY, dump, "the keys bucket")


def test_provider_credentials_set_at_run_time_are_stored_encrypted(http, stack):
    resp = admin_post(http, stack, "/credentials/set", {"model_name": "rotating", "api_key": UPSTREAM_KEY})
    assert resp.status_code == 200, resp.text
    assert UPSTREAM_KEY not in resp.text

    entries = raw_entries(stack, Subjects(stack.prefix).settings_bucket)
    credentials = [data for subject, data in entries if "rotating" in subject or b"rotating" in data]
    assert credentials, [subject for subject, _ in entries]  # the credential is stored here...
    for _, data in entries:
        assert UPSTREAM_KEY.encode() not in data  # ...but not in plaintext
        assert UPSTREAM_KEY.removeprefix("sk-").encode() not in data
    # It is the real credential, decrypted where it is used: the model that had a stale one answers.
    answer = http.post(stack.base_url + CHAT, headers=auth(MASTER_KEY), json={"model": "rotating", "messages": HELLO})
    assert answer.status_code == 200, answer.text


def test_no_key_reaches_a_log_line_or_a_usage_row(http, stack):
    key = new_key(http, stack, key_alias="leak-probe")["key"]
    other = new_user(http, stack, "leak-probe-user", "app_user")["key"]
    request_ids = []
    for who, body in [
        (key, {"model": "gpt-4", "messages": HELLO}),
        (key, {"model": "gpt-4", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}),
        (other, {"model": "gpt-3.5-turbo", "messages": HELLO}),
        (MASTER_KEY, {"model": "gpt-4", "messages": HELLO, "max_tokens": 2}),
        (key, {"model": "err-401", "messages": HELLO}),  # the upstream refuses the gateway's credential
        (key, {"model": "err-500", "messages": HELLO}),
        (key, {"model": "no-such-model", "messages": HELLO}),
    ]:
        resp = http.post(stack.base_url + CHAT, headers=auth(who), json=body)
        request_ids.append(resp.headers["x-request-id"])
        for secret in (key, other, MASTER_KEY, UPSTREAM_KEY):
            assert secret not in resp.text and secret not in str(resp.headers)
    embeddings = http.post(stack.base_url + "/v1/embeddings", headers=auth(key), json={"model": "gpt-4", "input": "hi"})
    assert embeddings.status_code == 200
    messages = http.post(
        stack.base_url + "/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={"model": "gpt-4", "max_tokens": 3, "messages": HELLO},
    )
    assert messages.status_code == 200
    assert (
        http.post(
            stack.base_url + CHAT, headers=auth("sk-wrong-key-000000000"), json={"model": "gpt-4", "messages": HELLO}
        ).status_code
        == 401
    )

    metered = stack.usage_rows([*request_ids[:6], embeddings.headers["x-request-id"], messages.headers["x-request-id"]])
    assert len(metered) == 8
    rows = stack.query("SELECT * FROM usage")
    assert len(rows) >= 8
    usage = "\n".join(json.dumps(row, default=str) for row in rows)
    logs = stack.logs()
    assert request_ids[0] in logs  # the edge's request lines are in the logs read
    for secret in (key, other, MASTER_KEY, UPSTREAM_KEY, "sk-wrong-key-000000000"):
        assert_absent(secret, logs, "a log line")
        assert_absent(secret, usage, "a usage row")


# --- CORS -----------------------------------------------------------------------------------------------


def preflight(http, stack, path: str, origin: str = ORIGIN) -> httpx.Response:
    return http.options(
        stack.base_url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST" if path == CHAT else "GET",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_cors_is_off_by_default(http, stack):
    for path in ("/v1/models", CHAT):
        resp = preflight(http, stack, path)
        assert resp.status_code < 500
        assert "access-control-allow-origin" not in resp.headers, (path, dict(resp.headers))
    answer = http.post(
        stack.base_url + CHAT, headers={**auth(MASTER_KEY), "Origin": ORIGIN}, json={"model": "gpt-4", "messages": HELLO}
    )
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    models = http.get(stack.base_url + "/v1/models", headers={**auth(MASTER_KEY), "Origin": ORIGIN})
    assert models.status_code == 200 and "access-control-allow-origin" not in models.headers


@pytest.mark.parametrize("path", ["/v1/models", CHAT], ids=["litestar-route", "raw-asgi-route"])
def test_cors_allows_the_configured_origins_on_every_kind_of_route(http, cors_stack, path):
    pre = preflight(http, cors_stack, path)
    assert pre.status_code == 204, pre.text
    assert pre.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in pre.headers["access-control-allow-methods"] or pre.headers["access-control-allow-methods"] == "*"
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()

    headers = {**auth(MASTER_KEY), "Origin": ORIGIN}
    if path == CHAT:
        resp = http.post(cors_stack.base_url + path, headers=headers, json={"model": "gpt-4", "messages": HELLO})
        assert "x-request-id" in resp.headers["access-control-expose-headers"].lower()
    else:
        resp = http.get(cors_stack.base_url + path, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] == ORIGIN


def test_cors_errors_are_readable_by_the_allowed_origin_and_other_origins_are_refused(http, cors_stack):
    refused = http.post(cors_stack.base_url + CHAT, headers={"Origin": ORIGIN}, json={"model": "gpt-4", "messages": HELLO})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ORIGIN

    for path in ("/v1/models", CHAT):
        pre = preflight(http, cors_stack, path, origin="https://evil.example")
        assert "access-control-allow-origin" not in pre.headers, path
        resp = http.get(cors_stack.base_url + "/v1/models", headers={**auth(MASTER_KEY), "Origin": "https://evil.example"})
        assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers

    second = preflight(http, cors_stack, CHAT, origin="https://other.example")
    assert second.headers["access-control-allow-origin"] == "https://other.example"


# --- request ids ----------------------------------------------------------------------------------------


def test_every_answer_of_the_model_routes_has_a_request_id(http, stack):
    answers = {
        "chat": http.post(stack.base_url + CHAT, headers=auth(MASTER_KEY), json={"model": "gpt-4", "messages": HELLO}),
        "stream": http.post(
            stack.base_url + CHAT, headers=auth(MASTER_KEY), json={"model": "gpt-4", "messages": HELLO, "stream": True}
        ),
        "invalid": http.post(stack.base_url + CHAT, headers=auth(MASTER_KEY), json={"model": "gpt-4", "messages": []}),
        "unknown model": http.post(
            stack.base_url + CHAT, headers=auth(MASTER_KEY), json={"model": "no-such-model", "messages": HELLO}
        ),
        "no key": http.post(stack.base_url + CHAT, json={"model": "gpt-4", "messages": HELLO}),
        "wrong key": http.post(stack.base_url + CHAT, headers=auth("sk-wrong"), json={"model": "gpt-4", "messages": HELLO}),
        "upstream error": http.post(
            stack.base_url + CHAT, headers=auth(MASTER_KEY), json={"model": "err-429", "messages": HELLO}
        ),
        "embeddings": http.post(
            stack.base_url + "/v1/embeddings", headers=auth(MASTER_KEY), json={"model": "gpt-4", "input": "hi"}
        ),
        "anthropic": http.post(
            stack.base_url + "/v1/messages", headers=auth(MASTER_KEY), json={"model": "gpt-4", "max_tokens": 2, "messages": HELLO}
        ),
    }
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "chat": 200,
        "stream": 200,
        "invalid": 400,
        "unknown model": 404,
        "no key": 401,
        "wrong key": 401,
        "upstream error": 429,
        "embeddings": 200,
        "anthropic": 200,
    }
    ids = {name: r.headers.get("x-request-id") for name, r in answers.items()}
    assert all(i and i.startswith("req-") and len(i) == 36 for i in ids.values()), ids
    assert len(set(ids.values())) == len(ids)  # one id per request


def test_every_answer_of_the_other_routes_has_a_request_id(http, stack):
    answers = [
        http.get(stack.base_url + "/v1/models", headers=auth(MASTER_KEY)),
        http.get(stack.base_url + "/v1/models"),
        http.post(stack.base_url + "/key/generate", headers=auth(MASTER_KEY), json={}),
        http.get(stack.base_url + "/no/such/route"),
    ]
    assert [r.status_code for r in answers] == [200, 401, 200, 404]
    assert all(r.headers.get("x-request-id", "").startswith("req-") for r in answers)
