"""Virtual keys end to end, managed (seed 003's `/key/block`, `/key/regenerate`, `/key/update`,
`/key/delete`, `/key/list`), and who may call the admin routes, against edge, worker and metering
processes on a real nats-server (the stack: tests/e2e/admin/conftest.py)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.e2e.admin.support import HELLO, PLAINTEXTS, admin, auth, chat, error_of, generate, info, refused, when
from tests.e2e.stack import MASTER_KEY

pytestmark = pytest.mark.e2e


# --- block, regenerate, update, delete, list ---------------------------------------------------


def test_block_refuses_the_key_and_unblock_restores_it(http, stack):
    body = generate(http, stack, models=["gpt-4"])
    key = body["key"]
    assert chat(http, stack.base_url, key).status_code == 200
    resp = admin(http, stack, "/key/block", {"key": key})
    assert resp.status_code == 200, resp.text
    assert resp.json()["blocked"] is True and key not in resp.text
    refused(chat(http, stack.base_url, key), key, "blocked")
    assert info(http, stack, key).json()["info"]["blocked"] is True
    resp = admin(http, stack, "/key/unblock", {"key": body["token"]})  # by token works too
    assert resp.status_code == 200 and resp.json()["blocked"] is False
    assert chat(http, stack.base_url, key).status_code == 200
    # Blocked at generation.
    born_blocked = generate(http, stack, blocked=True)["key"]
    refused(chat(http, stack.base_url, born_blocked), born_blocked, "blocked")


def test_regenerate_gives_a_new_key_with_the_same_settings_and_refuses_the_old(http, stack):
    alias = f"regen-{uuid.uuid4().hex[:6]}"
    old = generate(http, stack, models=["gpt-4"], key_alias=alias, metadata={"app": "regen"}, max_budget=7)
    assert chat(http, stack.base_url, old["key"]).status_code == 200
    resp = admin(http, stack, "/key/regenerate", {"key": old["key"]})
    assert resp.status_code == 200, resp.text
    new = resp.json()
    PLAINTEXTS.append(new["key"])
    assert new["key"].startswith("sk-") and new["key"] != old["key"] and new["token"] != old["token"]
    assert new["key_name"] == f"sk-...{new['key'][-4:]}"
    assert (new["models"], new["key_alias"], new["metadata"], new["max_budget"]) == (["gpt-4"], alias, {"app": "regen"}, 7)
    assert chat(http, stack.base_url, new["key"]).status_code == 200
    error_of(chat(http, stack.base_url, new["key"], "gpt-3.5-turbo"), 403, "permission_denied")
    resp = chat(http, stack.base_url, old["key"])
    error_of(resp, 401, "invalid_api_key")
    assert old["key"] not in resp.text
    assert info(http, stack, old["key"]).status_code == 404
    assert info(http, stack, new["key"]).json()["info"]["key_alias"] == alias

    # The path form (`/key/{key}/regenerate`), with changed params.
    resp = admin(http, stack, f"/key/{new['key']}/regenerate", {"models": ["gpt-3.5-turbo"]})
    assert resp.status_code == 200, resp.text
    third = resp.json()
    PLAINTEXTS.append(third["key"])
    assert third["models"] == ["gpt-3.5-turbo"] and third["key_alias"] == alias
    assert chat(http, stack.base_url, third["key"], "gpt-3.5-turbo").status_code == 200
    error_of(chat(http, stack.base_url, new["key"]), 401, "invalid_api_key")
    assert admin(http, stack, "/key/regenerate", {"key": old["key"]}).status_code == 404


def test_update_changes_what_it_names_and_keeps_the_rest(http, stack):
    alias = f"upd-{uuid.uuid4().hex[:6]}"
    body = generate(http, stack, models=["gpt-4"], key_alias=alias, metadata={"v": 1}, max_budget=5)
    key = body["key"]
    error_of(chat(http, stack.base_url, key, "gpt-3.5-turbo"), 403, "permission_denied")

    # seed 003's /key/update request.
    resp = admin(
        http,
        stack,
        "/key/update",
        {
            "key": key,
            "models": ["gpt-3.5-turbo", "gpt-4", "claude-2"],
            "metadata": {"user": "ishaan@berri.ai"},
            "team_id": "core-infra",
        },
    )
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert updated["key"] == key
    assert updated["models"] == ["gpt-3.5-turbo", "gpt-4", "claude-2"]
    assert updated["metadata"] == {"user": "ishaan@berri.ai"} and updated["team_id"] == "core-infra"
    assert updated["key_alias"] == alias and updated["max_budget"] == 5  # not named: kept
    assert chat(http, stack.base_url, key, "gpt-3.5-turbo").status_code == 200

    # models: null -> every model; metadata: null -> {}.
    resp = admin(http, stack, "/key/update", {"key": body["token"], "models": None, "metadata": None})
    assert resp.status_code == 200, resp.text
    assert resp.json()["models"] == [] and resp.json()["metadata"] == {}
    assert chat(http, stack.base_url, key, "my-paid-tier").status_code == 200

    # A team with model limits, set by update, binds the key at once.
    assert admin(http, stack, "/key/update", {"key": key, "team_id": "litellm-dev"}).status_code == 200
    error_of(chat(http, stack.base_url, key, "gpt-4"), 403, "permission_denied")

    # duration restarts the clock; null removes the expiry.
    resp = admin(http, stack, "/key/update", {"key": key, "duration": "1h"})
    assert when(resp.json()["expires"]) == pytest.approx(time.time() + 3600, abs=5)
    resp = admin(http, stack, "/key/update", {"key": key, "duration": None})
    assert resp.json()["expires"] is None

    shown = info(http, stack, key).json()["info"]
    assert shown["team_id"] == "litellm-dev" and shown["key_alias"] == alias and shown["expires"] is None

    error_of(admin(http, stack, "/key/update", {"key": "sk-no-such-key-0000", "models": []}), 404, "not_found")
    error = error_of(admin(http, stack, "/key/update", {"key": key, "max_budget": -1}), 400, "invalid_request_error")
    assert error["param"] == "max_budget"
    error = error_of(admin(http, stack, "/key/update", {"models": ["gpt-4"]}), 400, "invalid_request_error")
    assert error["param"] == "key"


def test_delete_by_key_by_token_and_by_alias(http, stack):
    a, b = generate(http, stack), generate(http, stack)
    alias = f"del-{uuid.uuid4().hex[:6]}"
    c1, c2 = generate(http, stack, key_alias=alias), generate(http, stack, key_alias=alias)
    for k in (a, b, c1, c2):
        assert chat(http, stack.base_url, k["key"]).status_code == 200

    resp = admin(http, stack, "/key/delete", {"keys": [a["key"], b["token"]]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"deleted_keys": [a["key"], b["token"]]}
    resp = admin(http, stack, "/key/delete", {"key_aliases": [alias]})
    assert resp.status_code == 200 and resp.json() == {"deleted_keys": [alias]}

    for k in (a, b, c1, c2):
        refused(chat(http, stack.base_url, k["key"]), k["key"], "deleted")
        assert info(http, stack, k["key"]).status_code == 404
    error_of(admin(http, stack, "/key/delete", {"keys": [a["key"]]}), 404, "not_found")
    error_of(admin(http, stack, "/key/delete", {"key_aliases": ["no-such-alias-x"]}), 404, "not_found")
    error = error_of(admin(http, stack, "/key/delete", {}), 400, "invalid_request_error")
    assert error["param"] == "keys"


def test_a_delete_naming_one_unknown_key_deletes_none(http, stack):
    kept = generate(http, stack)
    resp = admin(http, stack, "/key/delete", {"keys": [kept["key"], "sk-unknown-000000000000"]})
    error_of(resp, 404, "not_found")
    assert chat(http, stack.base_url, kept["key"]).status_code == 200


def test_list_pages_through_the_keys_and_filters_them(http, stack):
    user, team = f"list-{uuid.uuid4().hex[:8]}@example.com", f"list-team-{uuid.uuid4().hex[:6]}"
    made = [generate(http, stack, user_id=user, team_id=team if i < 2 else None, key_alias=f"l{i}") for i in range(5)]
    tokens = [m["token"] for m in made]

    def page(**params) -> dict:
        resp = http.get(f"{stack.base_url}/key/list", params=params, headers=auth(MASTER_KEY))
        assert resp.status_code == 200, resp.text
        return resp.json()

    pages = [page(user_id=user, page=p, size=2) for p in (1, 2, 3)]
    for number, body in enumerate(pages, start=1):
        assert body["total_count"] == 5 and body["total_pages"] == 3 and body["current_page"] == number
    assert [len(b["keys"]) for b in pages] == [2, 2, 1]
    listed = [t for b in pages for t in b["keys"]]
    assert listed == tokens  # oldest first, each once, tokens only
    assert page(user_id=user, page=4, size=2)["keys"] == []

    full = page(user_id=user, size=10, return_full_object="true")
    assert [k["token"] for k in full["keys"]] == tokens
    assert all(k["user_id"] == user for k in full["keys"])
    assert {k["key_alias"] for k in full["keys"]} == {f"l{i}" for i in range(5)}
    assert all(m["key"] not in json.dumps(full) for m in made)

    by_team = page(team_id=team)
    assert by_team["keys"] == tokens[:2] and by_team["total_count"] == 2 and by_team["total_pages"] == 1

    everything = page(size=1000)
    assert set(tokens) <= set(everything["keys"]) and everything["total_count"] >= 5
    assert MASTER_KEY not in json.dumps(everything)

    for params, param in (({"page": 0}, "page"), ({"size": 0}, "size"), ({"size": 100000}, "size")):
        resp = http.get(f"{stack.base_url}/key/list", params=params, headers=auth(MASTER_KEY))
        error = error_of(resp, 400, "invalid_request_error")
        assert error["param"] == param, (params, error)


# --- who may call the admin routes ------------------------------------------------------------


ADMIN_ROUTES = [
    ("POST", "/key/generate", {}),
    ("POST", "/key/update", {"key": "KEY", "models": []}),
    ("POST", "/key/delete", {"keys": ["KEY"]}),
    ("POST", "/key/regenerate", {"key": "KEY"}),
    ("POST", "/key/block", {"key": "KEY"}),
    ("POST", "/key/unblock", {"key": "KEY"}),
    ("GET", "/key/list", None),
]


def test_a_key_that_is_not_an_admins_is_refused_by_admin_routes_with_403(http, stack):
    caller = generate(http, stack)["key"]
    victim = generate(http, stack, models=["gpt-4"])
    for method, path, body in ADMIN_ROUTES:
        if body is not None:
            body = json.loads(json.dumps(body).replace("KEY", victim["key"]))
        resp = http.request(method, f"{stack.base_url}{path}", headers=auth(caller), json=body)
        error = error_of(resp, 403, "permission_denied")
        assert caller not in resp.text and victim["key"] not in resp.text, path
        assert "admin" in error["message"].lower(), path
    # Nothing happened to the victim.
    assert chat(http, stack.base_url, victim["key"]).status_code == 200
    shown = info(http, stack, victim["key"]).json()["info"]
    assert shown["models"] == ["gpt-4"] and shown["blocked"] is False and shown["token"] == victim["token"]


def test_admin_routes_without_a_key_or_with_an_unknown_one_are_401(http, stack):
    for method, path, body in ADMIN_ROUTES:
        resp = http.request(method, f"{stack.base_url}{path}", json=body)
        error_of(resp, 401, "invalid_api_key")
        resp = http.request(method, f"{stack.base_url}{path}", json=body, headers=auth("sk-not-a-key-123456"))
        error_of(resp, 401, "invalid_api_key")
        assert "sk-not-a-key-123456" not in resp.text


def test_a_key_may_look_up_only_itself(http, stack):
    mine, other = generate(http, stack, models=["gpt-4"]), generate(http, stack)
    resp = info(http, stack, mine["key"], caller=mine["key"])
    assert resp.status_code == 200 and resp.json()["info"]["token"] == mine["token"]
    resp = http.get(f"{stack.base_url}/key/info", headers=auth(mine["key"]))  # no `key`: itself
    assert resp.status_code == 200 and resp.json()["info"]["models"] == ["gpt-4"]
    assert mine["key"] not in json.dumps(resp.json())
    resp = info(http, stack, other["key"], caller=mine["key"])
    error_of(resp, 403, "permission_denied")
    assert other["key"] not in resp.json()["error"]["message"]
    error_of(info(http, stack, other["token"], caller=mine["key"]), 403, "permission_denied")


def test_unknown_keys_are_404_to_admins_and_401_to_the_api(http, stack):
    unknown = "sk-" + uuid.uuid4().hex[:22]
    error_of(info(http, stack, unknown), 404, "not_found")
    error_of(info(http, stack, "0" * 64), 404, "not_found")
    for path in ("/key/update", "/key/regenerate", "/key/block", "/key/unblock"):
        error_of(admin(http, stack, path, {"key": unknown}), 404, "not_found")
    resp = chat(http, stack.base_url, unknown)
    refused(resp, unknown, "invalid")
    resp = http.post(f"{stack.base_url}/v1/chat/completions", json={"model": "gpt-4", "messages": HELLO})
    error_of(resp, 401, "invalid_api_key")
    error = error_of(http.get(f"{stack.base_url}/key/info", headers=auth(MASTER_KEY)), 400, "invalid_request_error")
    assert error["param"] == "key"
