"""A LiteLLM proxy user's scripts against llmgw, with plain HTTP as LiteLLM's proxy docs show each
call: roles by LiteLLM's names, reads scoped to one's own key (own record 200, another's 403, no
key 401), `/user/update` creating, `/user/list`, `/team/list`, members added, changed and removed
(50 concurrent calls naming one new member make one user), team models and `model_aliases`, and
blocked teams. One edge, a worker and metering on a real nats-server (this module's own stack)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

import llmgw
from tests.e2e.admin.support import (
    HELLO,
    PLAINTEXTS,
    PREFIX,
    admin,
    auth,
    chat,
    error_of,
    generate,
    start_spend_stack,
    uid,
    write_keys_config,
)
from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("litellm-stack")
    config = write_keys_config(root / "keys.yaml", upstream.base_url, {})
    s = start_spend_stack(root, nats_server.url, PREFIX + "mig", upstream, config)
    yield s
    s.stop()


def new_user(http, stack, **params) -> dict:
    resp = admin(http, stack, "/user/new", params)
    assert resp.status_code == 200, resp.text
    PLAINTEXTS.append(resp.json()["key"])
    return resp.json()


def get(http, stack, path: str, caller: str | None = MASTER_KEY, **params) -> httpx.Response:
    return http.get(f"{stack.base_url}{path}", params=params, headers=auth(caller) if caller else {})


def new_team(http, stack, key: str = MASTER_KEY, **params) -> dict:
    resp = admin(http, stack, "/team/new", {"team_id": uid("team"), **params}, key=key)
    assert resp.status_code == 200, resp.text
    return resp.json()


def members(http, stack, team_id: str) -> dict[str, str]:
    resp = get(http, stack, "/team/info", team_id=team_id)
    assert resp.status_code == 200, resp.text
    return {m["user_id"]: m["role"] for m in resp.json()["team_info"]["members_with_roles"]}


# --- roles -----------------------------------------------------------------------------------


def test_roles_by_litellm_names_decide_what_a_key_may_do(http, stack):
    viewer = new_user(http, stack, user_id=uid("viewer"), user_role="proxy_admin_viewer")["key"]
    internal = new_user(http, stack, user_id=uid("internal"), user_role="internal_user")["key"]
    boss = new_user(http, stack, user_id=uid("boss"), user_role="proxy_admin")["key"]
    old_admin = new_user(http, stack, user_id=uid("old-admin"), user_role="admin")["key"]  # the older name

    # A proxy admin viewer reads every record and changes none.
    for path in ("/key/list", "/user/list", "/team/list", "/spend/logs", "/global/spend/report"):
        assert get(http, stack, path, viewer).status_code == 200, path
    assert get(http, stack, "/user/info", viewer, view_all="true").status_code == 200
    for path, body in (("/key/generate", {}), ("/team/new", {}), ("/user/new", {}), ("/user/update", {"user_id": "x"})):
        error = error_of(admin(http, stack, path, body, key=viewer), 403, "permission_denied")
        assert "proxy_admin_viewer" in error["message"], error

    # An internal user's valid key on an admin route is 403 (not 401), on reads and writes alike.
    for path in ("/key/list", "/user/list", "/spend/logs", "/global/spend/report"):
        error = error_of(get(http, stack, path, internal), 403, "permission_denied")
        assert "internal_user" in error["message"], error
    # ... but makes keys of its own (self-service), for itself only.
    error_of(admin(http, stack, "/key/generate", {"user_id": uid("someone")}, key=internal), 403, "permission_denied")
    error_of(get(http, stack, "/user/info", internal, view_all="true"), 403, "permission_denied")

    # No key, or an unknown one: 401.
    for key in (None, "sk-not-a-key-0000"):
        error_of(get(http, stack, "/spend/logs", key), 401, "invalid_api_key")
        error_of(get(http, stack, "/user/info", key), 401, "invalid_api_key")

    # A proxy admin (and `admin`, the older name of the role) may do everything.
    for key in (boss, old_admin):
        made = admin(http, stack, "/key/generate", {"models": ["gpt-4"]}, key=key)
        assert made.status_code == 200, made.text
        PLAINTEXTS.append(made.json()["key"])
    error = error_of(admin(http, stack, "/user/new", {"user_role": "root"}), 400, "invalid_request_error")
    assert error["param"] == "user_role" and "proxy_admin_viewer" in error["message"]


# --- scoped reads with one's own key ----------------------------------------------------------


def test_a_key_reads_its_own_user_team_and_key_and_no_one_elses(http, stack):
    team = new_team(http, stack, models=["gpt-4"])
    other_team = new_team(http, stack)
    ana = new_user(http, stack, user_id=uid("ana"), user_email="ana@example.com")
    bob = new_user(http, stack, user_id=uid("bob"))
    assert (
        admin(http, stack, "/team/member_add", {"team_id": team["team_id"], "member": {"user_id": ana["user_id"]}}).status_code
        == 200
    )
    team_key = generate(http, stack, team_id=other_team["team_id"])["key"]  # a key of the team, of no user
    key = ana["key"]

    # Own user: with no user_id, and by its own id.
    for params in ({}, {"user_id": ana["user_id"]}):
        resp = get(http, stack, "/user/info", key, **params)
        assert resp.status_code == 200, resp.text
        shown = resp.json()
        assert shown["user_id"] == ana["user_id"] and shown["user_info"]["user_email"] == "ana@example.com"
        assert [k["token"] for k in shown["keys"]] == [ana["token"]]
        assert team["team_id"] in [t["team_id"] for t in shown["teams"]]
    error = error_of(get(http, stack, "/user/info", key, user_id=bob["user_id"]), 403, "permission_denied")
    assert error["param"] == "user_id"

    # A team its user belongs to; the key's own team (with no team_id too); not another team.
    assert get(http, stack, "/team/info", key, team_id=team["team_id"]).json()["team_info"]["models"] == ["gpt-4"]
    error_of(get(http, stack, "/team/info", key, team_id=other_team["team_id"]), 403, "permission_denied")
    for params in ({}, {"team_id": other_team["team_id"]}):
        resp = get(http, stack, "/team/info", team_key, **params)
        assert resp.status_code == 200 and resp.json()["team_id"] == other_team["team_id"], resp.text
    error_of(get(http, stack, "/team/info", team_key, team_id=team["team_id"]), 403, "permission_denied")
    assert [t["team_id"] for t in get(http, stack, "/team/list", key).json()] == [team["team_id"]]

    # Its own key; not another's.
    assert get(http, stack, "/key/info", key).json()["info"]["token"] == ana["token"]
    assert get(http, stack, "/key/info", key, key=key).status_code == 200
    error_of(get(http, stack, "/key/info", key, key=bob["key"]), 403, "permission_denied")

    # No key: 401, whatever is asked.
    for path, params in (
        ("/user/info", {"user_id": ana["user_id"]}),
        ("/team/info", {"team_id": team["team_id"]}),
        ("/key/info", {}),
    ):
        error_of(get(http, stack, path, None, **params), 401, "invalid_api_key")


def test_model_reads_answer_a_key_with_the_models_it_may_use(http, stack):
    key = generate(http, stack, models=["gpt-4"])["key"]
    for path in ("/model/info", "/v1/model/info"):
        mine = get(http, stack, path, key).json()["data"]
        assert {m["model_name"] for m in mine} == {"gpt-4"}, path
        assert all("api_key" not in m["litellm_params"] and "api_base" not in m["litellm_params"] for m in mine)
    groups = get(http, stack, "/model_group/info", key).json()["data"]
    assert [g["model_group"] for g in groups] == ["gpt-4"] and groups[0]["providers"] == ["openai"]
    assert groups[0]["input_cost_per_token"] > 0  # gpt-4o's price from the price table
    assert {m["id"] for m in get(http, stack, "/v1/models", key).json()["data"]} == {"gpt-4"}

    everything = get(http, stack, "/model/info").json()["data"]
    assert {"gpt-4", "gpt-3.5-turbo", "my-free-tier"} <= {m["model_name"] for m in everything}
    shown = next(m for m in everything if m["model_name"] == "gpt-4")["litellm_params"]["api_key"]
    assert shown.startswith("sk-...") and UPSTREAM_KEY not in json.dumps(everything)
    assert len([g for g in get(http, stack, "/model_group/info").json()["data"] if g["model_group"] == "my-free-tier"]) == 1
    for path in ("/model/info", "/model_group/info"):
        error_of(get(http, stack, path, None), 401, "invalid_api_key")


# --- users -----------------------------------------------------------------------------------


def test_user_update_creates_a_user_that_does_not_exist_and_user_list_filters(http, stack):
    user_id = uid("created-by-update")
    resp = admin(
        http,
        stack,
        "/user/update",
        {"user_id": user_id, "user_email": "new@example.com", "user_role": "internal_user_viewer", "max_budget": 5},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["user_info"]["user_email"] == "new@example.com"
    shown = get(http, stack, "/user/info", user_id=user_id).json()["user_info"]
    assert shown["user_role"] == "internal_user_viewer" and shown["max_budget"] == 5
    # Updated again: the same user, changed.
    assert admin(http, stack, "/user/update", {"user_id": user_id, "max_budget": 7}).json()["user_info"]["max_budget"] == 7
    assert get(http, stack, "/user/info", user_id=user_id).json()["user_info"]["user_email"] == "new@example.com"

    listed = get(http, stack, "/user/list", user_ids=f"{user_id},{uid('nobody')}").json()
    assert [u["user_id"] for u in listed["users"]] == [user_id] and listed["total"] == 1
    by_role = get(http, stack, "/user/list", role="internal_user_viewer", page_size=1000).json()
    assert user_id in [u["user_id"] for u in by_role["users"]]
    assert all(u["user_role"] in ("internal_user_viewer", "app_user") for u in by_role["users"])
    error = error_of(get(http, stack, "/user/list", page=0), 400, "invalid_request_error")
    assert error["param"] == "page"


# --- team members ----------------------------------------------------------------------------


def test_fifty_concurrent_member_adds_naming_one_new_member_all_succeed_and_make_one_user(http, stack):
    team_id = new_team(http, stack)["team_id"]
    user_id, email = uid("racer"), f"{uid('racer')}@example.com"
    bodies = [{"team_id": team_id, "member": {"user_id": user_id, "role": "user"}}] * 50
    bodies += [{"team_id": team_id, "member": {"user_email": email, "role": "user"}}] * 50
    # A correctness check, not a latency one: a slow shared CI machine gets a minute per call.
    with httpx.Client(timeout=60) as patient, ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda body: admin(patient, stack, "/team/member_add", body), bodies))
    assert [a.status_code for a in answers] == [200] * 100, {a.text for a in answers if a.status_code != 200}

    shown = members(http, stack, team_id)
    by_email = [u for u in get(http, stack, "/user/list", page_size=1000).json()["users"] if u["user_email"] == email]
    assert len(by_email) == 1, by_email
    assert shown == {user_id: "user", by_email[0]["user_id"]: "user"}
    for member in (user_id, by_email[0]["user_id"]):
        assert team_id in get(http, stack, "/user/info", user_id=member).json()["user_info"]["teams"]


def test_members_added_by_email_changed_and_removed_and_team_admins_manage_their_team(http, stack):
    creator = new_user(http, stack, user_id=uid("creator"), user_role="proxy_admin", user_email="creator@example.com")
    team_id = new_team(http, stack, key=creator["key"])["team_id"]
    # A team created by a user lists its creator as team admin.
    assert members(http, stack, team_id) == {creator["user_id"]: "admin"}
    assert team_id in get(http, stack, "/user/info", user_id=creator["user_id"]).json()["user_info"]["teams"]

    existing = new_user(http, stack, user_id=uid("carol"), user_email=f"{uid('carol')}@example.com")
    resp = admin(
        http, stack, "/team/member_add", {"team_id": team_id, "member": [{"user_email": existing["user_email"], "role": "admin"}]}
    )
    assert resp.status_code == 200, resp.text
    # Linked to the user with that address, not a new one.
    assert members(http, stack, team_id)[existing["user_id"]] == "admin"
    assert [t["team_id"] for t in get(http, stack, "/user/info", existing["key"]).json()["teams"]] == [team_id]

    # A team admin manages the members of their own team, and of no other.
    dave = uid("dave")
    resp = admin(http, stack, "/team/member_add", {"team_id": team_id, "member": {"user_id": dave}}, key=existing["key"])
    assert resp.status_code == 200, resp.text
    assert get(http, stack, "/user/info", user_id=dave).json()["user_info"]["teams"] == [team_id]
    other = new_team(http, stack)["team_id"]
    error_of(
        admin(http, stack, "/team/member_add", {"team_id": other, "member": {"user_id": dave}}, key=existing["key"]),
        403,
        "permission_denied",
    )
    plain = new_user(http, stack, user_id=uid("plain"))["key"]
    error_of(
        admin(http, stack, "/team/member_delete", {"team_id": team_id, "user_id": dave}, key=plain), 403, "permission_denied"
    )

    resp = admin(http, stack, "/team/member_update", {"team_id": team_id, "user_id": dave, "role": "admin"})
    assert resp.status_code == 200 and resp.json()["role"] == "admin", resp.text
    assert members(http, stack, team_id)[dave] == "admin"
    error = error_of(
        admin(http, stack, "/team/member_update", {"team_id": team_id, "user_id": dave, "role": "owner"}),
        400,
        "invalid_request_error",
    )
    assert error["param"] == "role"

    # Removed (by e-mail address here): off the team and off the user's teams.
    resp = admin(http, stack, "/team/member_delete", {"team_id": team_id, "user_email": existing["user_email"]})
    assert resp.status_code == 200, resp.text
    assert existing["user_id"] not in members(http, stack, team_id)
    assert get(http, stack, "/user/info", user_id=existing["user_id"]).json()["user_info"]["teams"] == []
    error_of(get(http, stack, "/team/info", existing["key"], team_id=team_id), 403, "permission_denied")
    error_of(admin(http, stack, "/team/member_delete", {"team_id": team_id, "user_id": existing["user_id"]}), 404, "not_found")
    error_of(admin(http, stack, "/team/member_delete", {"team_id": uid("no-team"), "user_id": dave}), 404, "not_found")


# --- team models, aliases, blocking -----------------------------------------------------------


def test_team_models_added_and_removed_and_model_aliases_serve_the_team_keys(http, stack):
    team_id = new_team(http, stack, models=["gpt-4"])["team_id"]
    key = generate(http, stack, team_id=team_id)["key"]
    assert chat(http, stack.base_url, key, "gpt-4").status_code == 200
    error_of(chat(http, stack.base_url, key, "gpt-3.5-turbo"), 403, "permission_denied")

    resp = admin(http, stack, "/team/model/add", {"team_id": team_id, "models": ["gpt-3.5-turbo"]})
    assert resp.status_code == 200 and resp.json()["data"]["models"] == ["gpt-4", "gpt-3.5-turbo"], resp.text
    assert chat(http, stack.base_url, key, "gpt-3.5-turbo").status_code == 200
    resp = admin(http, stack, "/team/model/delete", {"team_id": team_id, "models": ["gpt-3.5-turbo"]})
    assert resp.status_code == 200 and resp.json()["data"]["models"] == ["gpt-4"], resp.text
    error_of(chat(http, stack.base_url, key, "gpt-3.5-turbo"), 403, "permission_denied")
    # Removing the last model would mean every model: refused, the list stays.
    error = error_of(
        admin(http, stack, "/team/model/delete", {"team_id": team_id, "models": ["gpt-4"]}), 400, "invalid_request_error"
    )
    assert error["param"] == "models"
    error_of(admin(http, stack, "/team/model/add", {"team_id": uid("no-team"), "models": ["gpt-4"]}), 404, "not_found")

    # A team's model alias: its keys ask for the alias and are served by the model it names.
    resp = admin(http, stack, "/team/update", {"team_id": team_id, "model_aliases": {"house-model": "gpt-4"}})
    assert resp.status_code == 200 and resp.json()["data"]["model_aliases"] == {"house-model": "gpt-4"}, resp.text
    answer = chat(http, stack.base_url, key, "house-model")
    assert answer.status_code == 200, answer.text
    row = stack.usage_rows([answer.headers["x-request-id"]])[answer.headers["x-request-id"]]
    assert row["model_group"] == "gpt-4"
    error_of(chat(http, stack.base_url, generate(http, stack)["key"], "house-model"), 404, "model_not_found")


def test_team_block_refuses_the_team_keys_and_unblock_serves_them_again(http, stack):
    team_id = new_team(http, stack)["team_id"]
    keys = [generate(http, stack, team_id=team_id)["key"] for _ in range(2)]
    bystander = generate(http, stack)["key"]
    for key in keys:
        assert chat(http, stack.base_url, key).status_code == 200
    resp = admin(http, stack, "/team/block", {"team_id": team_id})
    assert resp.status_code == 200 and resp.json()["blocked"] is True, resp.text
    for key in keys:
        error = error_of(chat(http, stack.base_url, key), 401, "invalid_api_key")
        assert "blocked" in error["message"], error
    assert chat(http, stack.base_url, bystander).status_code == 200
    assert admin(http, stack, "/team/unblock", {"team_id": team_id}).json()["blocked"] is False
    for key in keys:
        assert chat(http, stack.base_url, key).status_code == 200
    error_of(admin(http, stack, "/team/block", {"team_id": uid("no-team")}), 404, "not_found")
    error_of(admin(http, stack, "/team/block", {"team_id": team_id}, key=keys[0]), 403, "permission_denied")


# --- ids and LiteLLM's response headers -------------------------------------------------------


def spend_rows(http, stack, request_id: str) -> list[dict]:
    """The request's spend logs, once metering has its usage row."""
    return eventually_sync(
        lambda: get(http, stack, "/spend/logs", request_id=request_id).json(),
        f"the spend log of {request_id}",
        timeout=20,
    )


def test_a_request_is_found_in_spend_logs_by_its_answer_id_and_carries_litellm_headers(http, stack):
    key = generate(http, stack, models=["gpt-4"])["key"]
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)
    deployment = next(m["model_info"]["id"] for m in get(http, stack, "/model/info").json()["data"] if m["model_name"] == "gpt-4")

    raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=HELLO, max_tokens=3)
    completion, headers = raw.parse(), raw.headers
    request_id = headers["x-request-id"]
    assert completion.id and completion.id != request_id
    assert headers["x-litellm-call-id"] == request_id
    assert headers["x-litellm-model-id"] == deployment
    assert headers["x-litellm-model-group"] == "gpt-4"
    assert headers["x-litellm-attempted-retries"] == "0"
    cost = headers["x-litellm-response-cost"]
    assert "e" not in cost and float(cost) > 0, cost
    # Found by the answer's id and by llmgw's request id: the same row.
    by_answer, by_request = spend_rows(http, stack, completion.id), spend_rows(http, stack, request_id)
    assert by_answer == by_request and len(by_answer) == 1
    row = by_answer[0]
    assert row["request_id"] == request_id and row["response_id"] == completion.id
    assert row["model_id"] == deployment and abs(row["spend"] - float(cost)) < 1e-9

    # A stream: its chunks' id finds it too; its cost is known only at its end, after the headers.
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4", messages=HELLO, stream=True, stream_options={"include_usage": True}
    ) as streamed:
        stream_headers = streamed.headers
        ids = {chunk.id for chunk in streamed.parse()}
    assert len(ids) == 1
    assert stream_headers["x-litellm-call-id"] == stream_headers["x-request-id"]
    assert stream_headers["x-litellm-model-id"] == deployment and "x-litellm-response-cost" not in stream_headers
    rows = spend_rows(http, stack, ids.pop())
    assert [r["request_id"] for r in rows] == [stream_headers["x-request-id"]]
    assert get(http, stack, "/spend/logs", request_id="chatcmpl-no-such-answer").json() == []


# --- health probes ----------------------------------------------------------------------------


def probe(stack, path: str) -> httpx.Response:
    """What a Kubernetes httpGet probe does: a GET without credentials; 200-399 is success."""
    return httpx.get(f"{stack.base_url}{path}", timeout=2)


def test_kubernetes_probes_of_every_health_route_and_the_route_list(stack):
    live = probe(stack, "/health/liveliness")
    assert live.status_code == 200 and live.json() == "I'm alive!"
    assert probe(stack, "/health/live").json() == {"status": "ok"}
    ready = probe(stack, "/health/readiness")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "healthy" and body["db"] == "connected" and body["cache"] == "connected"
    assert body["litellm_version"] == llmgw.__version__
    assert probe(stack, "/health/ready").json()["status"] == "ready"

    routes = probe(stack, "/routes")
    assert routes.status_code == 200
    listed = {r["path"]: r["methods"] for r in routes.json()["routes"]}
    for path, method in (("/team/member_add", "POST"), ("/user/list", "GET"), ("/health/readiness", "GET")):
        assert method in listed[path], (path, listed.get(path))
    assert "/v1/chat/completions" in listed and "/key/generate" in listed


def test_readiness_probes_fail_while_no_worker_serves_and_liveness_holds(stack):
    """(Last in the module: it stops the worker, then starts another.)"""
    stack.workers[-1].stop()
    try:
        eventually_sync(lambda: probe(stack, "/health/readiness").status_code == 503, "readiness to fail", timeout=40)
        body = probe(stack, "/health/readiness").json()
        assert body["status"] == "unhealthy" and body["checks"]["workers"] is False
        assert body["db"] == "connected"  # the store is there: what is missing is a worker
        assert probe(stack, "/health/ready").status_code == 503
        assert probe(stack, "/health/liveliness").status_code == 200
    finally:
        stack.start_worker()
    eventually_sync(lambda: probe(stack, "/health/readiness").status_code == 200, "readiness to hold again", timeout=40)
