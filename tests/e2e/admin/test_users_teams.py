"""Users and teams end to end (seed 003's `/user/*`, LiteLLM's `/team/*`), and the promise that a
plaintext key is kept nowhere, against the stack of the key modules (tests/e2e/admin/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import nats
import pytest
from nats.js.errors import NoKeysError

from llmgw.contracts import Subjects
from tests.e2e.admin.support import HELLO, PLAINTEXTS, PREFIX, admin, auth, chat, error_of, generate, info, known_on, refused
from tests.e2e.stack import MASTER_KEY

pytestmark = pytest.mark.e2e


# --- users and teams (seed 003's /user/*, LiteLLM's /team/*) ---------------------------------


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_user(http, stack, **params) -> dict:
    resp = admin(http, stack, "/user/new", params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    PLAINTEXTS.append(body["key"])
    return body


def user_info(http, stack, **params) -> httpx.Response:
    return http.get(f"{stack.base_url}/user/info", params=params, headers=auth(MASTER_KEY))


def team_info(http, stack, team_id: str) -> httpx.Response:
    return http.get(f"{stack.base_url}/team/info", params={"team_id": team_id}, headers=auth(MASTER_KEY))


def test_user_new_creates_the_user_and_answers_with_a_working_key(http, stack):
    user_id = uid("ishaan1")
    # seed 003's /user/new request.
    body = new_user(
        http,
        stack,
        user_id=user_id,
        user_email="ishaan@litellm.ai",
        user_role="app_owner",
        team_id="cto-team",
        max_budget=20,
        budget_duration="1h",
    )
    key = body["key"]
    assert key.startswith("sk-") and body["key_name"] == f"sk-...{key[-4:]}"
    assert body["user_id"] == user_id and body["max_budget"] == 20 and body["expires"] is None
    assert chat(http, stack.base_url, key).status_code == 200

    resp = user_info(http, stack, user_id=user_id)
    assert resp.status_code == 200, resp.text
    shown = resp.json()
    assert set(shown) >= {"user_id", "user_info", "keys", "teams"} and shown["user_id"] == user_id
    assert shown["user_info"]["user_email"] == "ishaan@litellm.ai"
    assert shown["user_info"]["user_role"] == "app_owner"
    assert shown["user_info"]["max_budget"] == 20 and shown["user_info"]["budget_duration"] == "1h"
    assert "cto-team" in shown["user_info"]["teams"]
    assert [k["token"] for k in shown["keys"]] == [body["token"]]
    assert shown["keys"][0]["user_id"] == user_id and shown["keys"][0]["team_id"] == "cto-team"
    assert key not in resp.text and key[3:] not in resp.text

    # Defaults: a uuid user id, role internal_user.
    anonymous = new_user(http, stack)
    assert uuid.UUID(anonymous["user_id"])
    assert user_info(http, stack, user_id=anonymous["user_id"]).json()["user_info"]["user_role"] == "internal_user"

    error_of(admin(http, stack, "/user/new", {"user_id": user_id}), 400, "invalid_request_error")
    error = error_of(admin(http, stack, "/user/new", {"user_role": "superuser"}), 400, "invalid_request_error")
    assert error["param"] == "user_role"
    error_of(user_info(http, stack, user_id=uid("nobody")), 404, "not_found")


def test_user_new_with_models_gives_a_key_limited_to_them(http, stack):
    # seed 003, "Set Budgets - Per User": "The request is a normal /key/generate request body".
    user_id = uid("krrish3")
    body = new_user(http, stack, user_id=user_id, models=["gpt-4"], max_budget=5)
    assert body["models"] == ["gpt-4"]
    assert chat(http, stack.base_url, body["key"], "gpt-4").status_code == 200
    resp = chat(http, stack.base_url, body["key"], "gpt-3.5-turbo")
    assert resp.status_code == 403, f"the key of a user limited to [gpt-4] called gpt-3.5-turbo: {resp.status_code}"


def test_a_refused_user_new_creates_no_user(http, stack):
    user_id = uid("half-made")
    resp = admin(http, stack, "/user/new", {"user_id": user_id, "duration": "5 parsecs"})
    error = error_of(resp, 400, "invalid_request_error")
    assert error["param"] == "duration"
    assert user_info(http, stack, user_id=user_id).status_code == 404, "the user was stored although /user/new failed"
    fixed = new_user(http, stack, user_id=user_id, duration="1h")
    assert fixed["user_id"] == user_id


def test_user_info_view_all_pages_through_every_user(http, stack):
    made = {new_user(http, stack, user_id=uid("page"))["user_id"] for _ in range(3)}

    def page(p: int, size: int) -> dict:
        resp = user_info(http, stack, view_all="true", page=p, page_size=size)
        assert resp.status_code == 200, resp.text
        return resp.json()

    first = page(0, 2)
    total = first["total_count"]
    assert total >= 3 and first["total_pages"] == -(-total // 2)
    seen = [u["user_id"] for p in range(first["total_pages"]) for u in page(p, 2)["users"]]
    assert len(seen) == total == len(set(seen)) and made <= set(seen)
    assert [u["user_id"] for u in page(0, 25)["users"]][: len(seen)] == seen[:25]
    for params, param in (({"page": -1}, "page"), ({"page_size": 0}, "page_size")):
        resp = user_info(http, stack, view_all="true", **params)
        error = error_of(resp, 400, "invalid_request_error")
        assert error["param"] == param, (params, error)


def test_user_update_changes_the_role_and_the_role_decides_admin_access(http, stack):
    user = new_user(http, stack, user_id=uid("promoted"))
    key = user["key"]
    error_of(admin(http, stack, "/team/new", {}, key=key), 403, "permission_denied")

    resp = admin(http, stack, "/user/update", {"user_id": user["user_id"], "user_role": "admin", "user_email": "a@b.c"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["user_info"]["user_role"] == "admin" and resp.json()["user_info"]["user_email"] == "a@b.c"
    # A key whose user is an admin may use the admin API.
    made = admin(http, stack, "/key/generate", {"models": ["gpt-4"]}, key=key)
    assert made.status_code == 200, made.text
    PLAINTEXTS.append(made.json()["key"])
    assert info(http, stack, made.json()["key"], caller=key).status_code == 200
    assert http.get(f"{stack.base_url}/key/list", headers=auth(key)).status_code == 200

    assert admin(http, stack, "/user/update", {"user_id": user["user_id"], "user_role": "app_user"}).status_code == 200
    error_of(admin(http, stack, "/key/generate", {}, key=key), 403, "permission_denied")
    # A user that does not exist is created by /user/update, as LiteLLM does.
    ghost = uid("ghost")
    assert admin(http, stack, "/user/update", {"user_id": ghost, "user_role": "admin"}).status_code == 200
    assert user_info(http, stack, user_id=ghost).json()["user_info"]["user_role"] == "admin"
    error = error_of(
        admin(http, stack, "/user/update", {"user_id": user["user_id"], "user_role": "root"}), 400, "invalid_request_error"
    )
    assert error["param"] == "user_role"

    # An admin user made by /user/new.
    boss = new_user(http, stack, user_id=uid("boss"), user_role="admin")
    resp = admin(http, stack, "/user/new", {"user_id": uid("minion")}, key=boss["key"])
    assert resp.status_code == 200, resp.text
    PLAINTEXTS.append(resp.json()["key"])


def test_user_delete_deletes_the_user_and_every_key_of_theirs(http, stack):
    user = new_user(http, stack, user_id=uid("leaver"))
    second = generate(http, stack, user_id=user["user_id"])
    bystander = generate(http, stack, user_id=uid("stayer"))
    for key in (user["key"], second["key"], bystander["key"]):
        assert chat(http, stack.base_url, key).status_code == 200
    assert len(user_info(http, stack, user_id=user["user_id"]).json()["keys"]) == 2

    resp = admin(http, stack, "/user/delete", {"user_ids": [user["user_id"]]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"deleted_users": [user["user_id"]]}
    for key in (user["key"], second["key"]):
        refused(chat(http, stack.base_url, key), key, "deleted")
        assert info(http, stack, key).status_code == 404
    assert chat(http, stack.base_url, bystander["key"]).status_code == 200
    error_of(user_info(http, stack, user_id=user["user_id"]), 404, "not_found")
    error_of(admin(http, stack, "/user/delete", {"user_ids": [user["user_id"]]}), 404, "not_found")
    # The id may be used again; the old keys stay dead.
    again = new_user(http, stack, user_id=user["user_id"])
    assert chat(http, stack.base_url, again["key"]).status_code == 200
    refused(chat(http, stack.base_url, user["key"]), user["key"], "deleted")
    assert [k["token"] for k in user_info(http, stack, user_id=user["user_id"]).json()["keys"]] == [again["token"]]


def test_team_new_info_update_and_its_models_bound_its_keys(http, stack):
    team_id = uid("team")
    resp = admin(
        http,
        stack,
        "/team/new",
        {"team_id": team_id, "team_alias": "Core", "models": ["gpt-4"], "max_budget": 50, "metadata": {"cost_center": "42"}},
    )
    assert resp.status_code == 200, resp.text
    made = resp.json()
    assert (made["team_id"], made["team_alias"], made["models"], made["max_budget"]) == (team_id, "Core", ["gpt-4"], 50)

    key = generate(http, stack, team_id=team_id)
    assert chat(http, stack.base_url, key["key"], "gpt-4").status_code == 200
    error = error_of(chat(http, stack.base_url, key["key"], "gpt-3.5-turbo"), 403, "permission_denied")
    assert team_id in error["message"] and "gpt-4" in error["message"]

    resp = team_info(http, stack, team_id)
    assert resp.status_code == 200, resp.text
    shown = resp.json()
    assert shown["team_id"] == team_id and shown["team_info"]["models"] == ["gpt-4"]
    assert shown["team_info"]["metadata"] == {"cost_center": "42"}
    assert [k["token"] for k in shown["keys"]] == [key["token"]] and key["key"] not in resp.text

    resp = admin(http, stack, "/team/update", {"team_id": team_id, "models": ["gpt-3.5-turbo", "gpt-4"]})
    assert resp.status_code == 200, resp.text
    assert chat(http, stack.base_url, key["key"], "gpt-3.5-turbo").status_code == 200
    assert team_info(http, stack, team_id).json()["team_info"]["team_alias"] == "Core"  # not named: kept

    resp = admin(http, stack, "/team/update", {"team_id": team_id, "blocked": True})
    assert resp.status_code == 200, resp.text
    refused(chat(http, stack.base_url, key["key"]), key["key"], "blocked")
    assert admin(http, stack, "/team/update", {"team_id": team_id, "blocked": False}).status_code == 200
    assert chat(http, stack.base_url, key["key"]).status_code == 200

    error_of(admin(http, stack, "/team/new", {"team_id": team_id}), 400, "invalid_request_error")
    error_of(team_info(http, stack, uid("no-team")), 404, "not_found")
    error_of(admin(http, stack, "/team/update", {"team_id": uid("no-team"), "models": []}), 404, "not_found")
    error = error_of(admin(http, stack, "/team/new", {"max_budget": -5}), 400, "invalid_request_error")
    assert error["param"] == "max_budget"

    # A team of the config file (default_team_settings) shows in /team/info and can be changed.
    resp = team_info(http, stack, "beta-team")
    assert resp.status_code == 200 and resp.json()["team_info"]["models"] == ["beta-models"]


def test_team_member_add_records_the_team_on_the_user(http, stack):
    team_id = uid("crew")
    assert admin(http, stack, "/team/new", {"team_id": team_id}).status_code == 200
    known = new_user(http, stack, user_id=uid("member"))
    fresh = uid("newcomer")
    for user_id, role in ((known["user_id"], "admin"), (fresh, "user")):
        resp = admin(http, stack, "/team/member_add", {"team_id": team_id, "member": {"user_id": user_id, "role": role}})
        assert resp.status_code == 200, resp.text
    members = {m["user_id"]: m["role"] for m in team_info(http, stack, team_id).json()["team_info"]["members_with_roles"]}
    assert members == {known["user_id"]: "admin", fresh: "user"}
    for user_id in (known["user_id"], fresh):
        shown = user_info(http, stack, user_id=user_id).json()
        assert team_id in shown["user_info"]["teams"]
        assert team_id in [t["team_id"] for t in shown["teams"]]
    # Adding the same member again changes nothing.
    admin(http, stack, "/team/member_add", {"team_id": team_id, "member": {"user_id": fresh, "role": "user"}})
    assert len(team_info(http, stack, team_id).json()["team_info"]["members_with_roles"]) == 2
    error_of(admin(http, stack, "/team/member_add", {"team_id": uid("no-team"), "member": {"user_id": fresh}}), 404, "not_found")
    error = error_of(
        admin(http, stack, "/team/member_add", {"team_id": team_id, "member": {"role": "user"}}), 400, "invalid_request_error"
    )
    assert error["param"] == "member"


def test_team_delete_deletes_the_team_and_every_key_of_its(http, stack):
    team_id = uid("doomed")
    assert admin(http, stack, "/team/new", {"team_id": team_id, "models": ["gpt-4"]}).status_code == 200
    keys = [generate(http, stack, team_id=team_id) for _ in range(2)]
    other = generate(http, stack, team_id="core-infra")
    for k in (*keys, other):
        assert chat(http, stack.base_url, k["key"]).status_code == 200
    resp = admin(http, stack, "/team/delete", {"team_ids": [team_id]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"deleted_teams": [team_id]}
    for k in keys:
        refused(chat(http, stack.base_url, k["key"]), k["key"], "deleted")
    assert chat(http, stack.base_url, other["key"]).status_code == 200
    error_of(team_info(http, stack, team_id), 404, "not_found")
    error_of(admin(http, stack, "/team/delete", {"team_ids": [team_id]}), 404, "not_found")


def test_a_key_that_is_not_an_admins_is_refused_by_user_and_team_routes_with_403(http, stack):
    caller = new_user(http, stack, user_id=uid("plain"))["key"]
    for method, path, body in (
        ("POST", "/user/new", {}),
        ("GET", "/user/info?user_id=x", None),
        ("GET", "/user/info?view_all=true", None),
        ("POST", "/user/update", {"user_id": "x", "user_role": "admin"}),
        ("POST", "/user/delete", {"user_ids": ["x"]}),
        ("POST", "/team/new", {}),
        ("GET", "/team/info?team_id=litellm-dev", None),
        ("POST", "/team/update", {"team_id": "litellm-dev", "models": []}),
        ("POST", "/team/member_add", {"team_id": "litellm-dev", "member": {"user_id": "x"}}),
        ("POST", "/team/delete", {"team_ids": ["litellm-dev"]}),
    ):
        resp = http.request(method, f"{stack.base_url}{path}", headers=auth(caller), json=body)
        error_of(resp, 403, "permission_denied")
        assert caller not in resp.text, path
    # A user may not make themself an admin.
    resp = admin(http, stack, "/user/update", {"user_id": "x", "user_role": "admin"}, key=caller)
    assert resp.status_code == 403


# --- the plaintext is never kept ---------------------------------------------------------------


async def _kv_dump(nats_url: str, buckets: list[str]) -> str:
    """Every key and value of these buckets, as text."""
    nc = await nats.connect(nats_url)
    out: list[str] = []
    try:
        js = nc.jetstream()
        for bucket in buckets:
            try:
                kv = await js.key_value(bucket)
            except Exception:
                continue
            # Raw messages of the bucket's stream: current values and delete markers alike.
            stream = f"KV_{bucket}"
            state = (await js.stream_info(stream)).state
            for seq in range(state.first_seq, state.last_seq + 1):
                try:
                    msg = await js.get_msg(stream, seq)
                except Exception:
                    continue
                out.append(f"{msg.subject} {(msg.data or b'').decode(errors='replace')}")
            try:
                out.append(" ".join(await kv.keys()))
            except NoKeysError:  # (only delete markers, or none left since the stream was read)
                out.append("")
    finally:
        await nc.close()
    return "\n".join(out)


def test_the_plaintext_key_is_in_no_kv_value_log_line_or_clickhouse_row(http, stack):
    user = new_user(http, stack, user_id=uid("leak-user"), user_role="admin")
    team_id = uid("leak-team")
    assert (
        admin(
            http, stack, "/team/new", {"team_id": team_id, "members_with_roles": [{"user_id": user["user_id"]}]}, key=user["key"]
        ).status_code
        == 200
    )
    body = generate(
        http,
        stack,
        models=["gpt-4", "gpt-3.5-turbo"],
        key_alias="leak-check",
        user_id=user["user_id"],
        team_id=team_id,
        metadata={"purpose": "leak check"},
    )
    key = body["key"]
    request_ids = []
    for model in ("gpt-4", "gpt-3.5-turbo", "gpt-4"):
        resp = chat(http, stack.base_url, key, model)
        assert resp.status_code == 200
        request_ids.append(resp.headers["x-request-id"])
    stream = http.post(
        f"{stack.base_url}/v1/chat/completions", headers=auth(key), json={"model": "gpt-4", "messages": HELLO, "stream": True}
    )
    request_ids.append(stream.headers["x-request-id"])
    for base in (stack.bounds_url, stack.defaults_url):
        known_on(http, base, key)
        assert chat(http, base, key).status_code == 200
    error_of(chat(http, stack.base_url, key, "my-paid-tier"), 403, "permission_denied")
    assert info(http, stack, key).status_code == 200
    assert admin(http, stack, "/key/update", {"key": key, "metadata": {"purpose": "updated"}}).status_code == 200
    rows = stack.usage_rows(request_ids)
    assert all(r["key_hash"] == body["token"] for r in rows.values())
    assert {r["key_alias"] for r in rows.values()} == {"leak-check"}
    assert admin(http, stack, "/key/block", {"key": key}).status_code == 200
    refused(chat(http, stack.base_url, key), key, "blocked")
    assert admin(http, stack, "/key/delete", {"keys": [key]}).status_code == 200
    refused(chat(http, stack.base_url, key), key, "deleted")

    secrets = [*PLAINTEXTS, MASTER_KEY]
    assert len(PLAINTEXTS) > 10  # the keys of the whole module, when it runs whole

    subjects = Subjects(PREFIX)
    kv = asyncio.run(
        _kv_dump(stack.nats_url, [subjects.keys_bucket, subjects.users_bucket, subjects.teams_bucket, subjects.settings_bucket])
    )
    assert body["token"] in kv and user["user_id"] in kv and team_id in kv  # the dump read every bucket
    logs = stack.logs()
    assert "request" in logs

    tables = [r["name"] for r in stack.query("SELECT name FROM system.tables WHERE database = currentDatabase()")]
    assert "usage" in tables
    clickhouse = "\n".join(json.dumps(row, default=str) for t in tables for row in stack.query(f"SELECT * FROM `{t}`"))
    assert body["token"] in clickhouse

    for secret in secrets:
        for where, text in (("KV", kv), ("logs", logs), ("ClickHouse", clickhouse)):
            assert secret not in text, f"a plaintext key is in {where}"
            assert secret[3:] not in text, f"a plaintext key (without sk-) is in {where}"


def test_an_internal_user_makes_keys_of_their_own_within_their_teams_limits(http, stack):
    team_id = uid("selfserve")
    assert admin(http, stack, "/team/new", {"team_id": team_id, "models": ["gpt-4"], "max_budget": 20}).status_code == 200
    user = new_user(http, stack, user_id=uid("self"), user_role="internal_user", teams=[team_id])
    other_team = uid("elsewhere")
    assert admin(http, stack, "/team/new", {"team_id": other_team}).status_code == 200

    made = admin(http, stack, "/key/generate", {"key_alias": "mine", "team_id": team_id, "max_budget": 5}, key=user["key"])
    assert made.status_code == 200, made.text
    body = made.json()
    PLAINTEXTS.append(body["key"])
    assert (body["user_id"], body["team_id"], body["max_budget"]) == (user["user_id"], team_id, 5)
    assert chat(http, stack.base_url, body["key"], "gpt-4").status_code == 200
    mine = http.get(f"{stack.base_url}/user/info", headers=auth(user["key"])).json()
    assert body["token"] in [k["token"] for k in mine["keys"]]

    # Past the team's limits, for someone else, in another team, or an admin-only field: 403 naming it.
    for params, param in (
        ({"team_id": team_id, "models": ["gpt-3.5-turbo"]}, "models"),
        ({"team_id": team_id, "max_budget": 50}, "max_budget"),
        ({"user_id": uid("someone")}, "user_id"),
        ({"team_id": other_team}, "team_id"),
        ({"spend": 0}, "spend"),
        ({"permissions": {"admin": True}}, "permissions"),
    ):
        error = error_of(admin(http, stack, "/key/generate", params, key=user["key"]), 403, "permission_denied")
        assert error["param"] == param, (params, error)

    # A viewer makes none.
    viewer = new_user(http, stack, user_id=uid("onlylooks"), user_role="internal_user_viewer")
    error_of(admin(http, stack, "/key/generate", {}, key=viewer["key"]), 403, "permission_denied")
