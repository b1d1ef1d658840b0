"""Virtual keys end to end, made (seed 003's `/key/generate` and `/key/info` and their parameters,
upper bounds and defaults), against edge, worker and metering processes on a real nats-server (the
stack: tests/e2e/admin/conftest.py)."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from tests.e2e.admin.support import PLAINTEXTS, admin, auth, chat, error_of, generate, info, known_on, models_of, refused, when
from tests.e2e.stack import MASTER_KEY
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e


def test_generate_answers_with_the_key_its_name_token_expiry_and_every_field(http, stack):
    params = {
        "models": ["gpt-3.5-turbo", "gpt-4", "claude-2"],
        "duration": "20m",
        "metadata": {"user": "ishaan@berri.ai"},
        "team_id": "core-infra",
        "max_budget": 10,
        "soft_budget": 5,
        "key_alias": f"alias-{uuid.uuid4().hex[:6]}",
        "user_id": "ishaan2@berri.ai",
        "aliases": {"mistral-7b": "gpt-3.5-turbo"},
        "config": {"temperature": 0.2},
        "spend": 0.5,
        "model_max_budget": {"gpt-4": 0.5, "gpt-5": 0.01},
        "max_parallel_requests": 3,
        "tpm_limit": 1000,
        "rpm_limit": 10,
        "budget_duration": "30d",
        "system_prompt": "Answer briefly.",
    }
    before = time.time()
    body = generate(http, stack, **params)
    key = body["key"]
    assert re.fullmatch(r"sk-[A-Za-z0-9_-]{16,}", key)
    assert body["key_name"] == f"sk-...{key[-4:]}"
    assert re.fullmatch(r"[0-9a-f]{64}", body["token"]) and key[3:] not in body["token"]
    assert before + 20 * 60 - 1 <= when(body["expires"]) <= time.time() + 20 * 60 + 1
    assert body["blocked"] is False
    for name, value in params.items():
        if name != "duration":
            assert body[name] == value, name

    # /key/info by the plaintext and by the token: seed 003's shape, the token as the stored id.
    by_key, by_token = info(http, stack, key), info(http, stack, body["token"])
    assert by_key.status_code == by_token.status_code == 200, (by_key.text, by_token.text)
    assert by_key.json()["key"] == key
    assert by_key.json()["info"] == by_token.json()["info"]
    shown = by_key.json()["info"]
    assert shown["token"] == body["token"] and shown["key_name"] == body["key_name"]
    assert when(shown["expires"]) == pytest.approx(when(body["expires"]), abs=0.01)
    for name, value in params.items():
        if name != "duration":
            assert shown[name] == value, name
    assert key not in json.dumps(shown) and key[3:] not in json.dumps(shown)


def test_a_key_without_duration_never_expires_and_may_call_every_model(http, stack):
    body = generate(http, stack)
    assert body["expires"] is None and body["models"] == []
    for model in ("gpt-4", "gpt-3.5-turbo", "my-paid-tier"):
        assert chat(http, stack.base_url, body["key"], model).status_code == 200, model
    assert {"gpt-4", "gpt-3.5-turbo", "my-free-tier", "beta-chat"} <= models_of(http, stack.base_url, body["key"])


def test_an_expiring_key_works_then_is_refused_as_expired(http, stack):
    body = generate(http, stack, duration="2s", models=["gpt-4"])
    key = body["key"]
    assert when(body["expires"]) - time.time() <= 2.0
    assert chat(http, stack.base_url, key).status_code == 200
    resp = eventually_sync(
        lambda: (r := chat(http, stack.base_url, key)).status_code != 200 and r, "the key to expire", timeout=10, interval=0.1
    )
    assert time.time() >= when(body["expires"])
    refused(resp, key, "expired")
    refused(http.get(f"{stack.base_url}/v1/models", headers=auth(key)), key, "expired")
    # An admin still sees it (it is expired, not deleted).
    assert info(http, stack, key).status_code == 200


def test_a_key_limited_to_models_is_refused_others_with_403_naming_the_allowed_models(http, stack):
    key = generate(http, stack, models=["gpt-4", "my-paid-tier"])["key"]
    assert chat(http, stack.base_url, key, "gpt-4").status_code == 200
    assert chat(http, stack.base_url, key, "my-paid-tier").status_code == 200
    resp = chat(http, stack.base_url, key, "gpt-3.5-turbo")
    error = error_of(resp, 403, "permission_denied")
    assert error["type"] == "permission_error" or "permission" in error["type"]
    assert "gpt-3.5-turbo" in error["message"]
    assert "gpt-4" in error["message"] and "my-paid-tier" in error["message"]
    assert key not in resp.text
    assert models_of(http, stack.base_url, key) == {"gpt-4", "my-paid-tier"}


def test_aliases_map_a_requested_name_to_a_model_group(http, stack):
    # seed 003, "Upgrade/Downgrade Models".
    body = generate(http, stack, models=["my-free-tier"], aliases={"gpt-3.5-turbo": "my-free-tier"}, duration="30min")
    key = body["key"]
    assert body["aliases"] == {"gpt-3.5-turbo": "my-free-tier"}
    raw = chat(http, stack.base_url, key, "gpt-3.5-turbo")
    assert raw.status_code == 200, raw.text
    direct = chat(http, stack.base_url, key, "my-free-tier")
    assert direct.status_code == 200, direct.text
    error_of(chat(http, stack.base_url, key, "my-paid-tier"), 403, "permission_denied")
    rows = stack.usage_rows([raw.headers["x-request-id"], direct.headers["x-request-id"]])
    aliased = rows[raw.headers["x-request-id"]]
    assert aliased["model_group"] == "my-free-tier"
    assert aliased["upstream_model"] in ("gpt-4o-mini", "bench-model")
    assert aliased["key_hash"] == body["token"]

    # Upgrading is changing the alias.
    resp = admin(
        http,
        stack,
        "/key/update",
        {"key": key, "models": ["my-free-tier", "my-paid-tier"], "aliases": {"gpt-3.5-turbo": "my-paid-tier"}},
    )
    assert resp.status_code == 200, resp.text
    upgraded = chat(http, stack.base_url, key, "gpt-3.5-turbo")
    assert upgraded.status_code == 200, upgraded.text
    row = stack.usage_rows([upgraded.headers["x-request-id"]])[upgraded.headers["x-request-id"]]
    assert (row["model_group"], row["upstream_model"]) == ("my-paid-tier", "gpt-4o")


def test_models_may_name_an_access_group(http, stack):
    # seed 003, "Grant Access to new model": model_info.access_groups in the config.
    key = generate(http, stack, models=["beta-models"])["key"]
    emb = http.post(f"{stack.base_url}/v1/embeddings", headers=auth(key), json={"model": "text-embedding-ada-002", "input": "hi"})
    assert emb.status_code == 200, emb.text
    assert chat(http, stack.base_url, key, "beta-chat").status_code == 200
    error = error_of(chat(http, stack.base_url, key, "gpt-4"), 403, "permission_denied")
    assert "text-embedding-ada-002" in error["message"] and "beta-chat" in error["message"]
    assert models_of(http, stack.base_url, key) == {"text-embedding-ada-002", "beta-chat"}

    mixed = generate(http, stack, models=["cheap-models", "gpt-4"])["key"]
    assert models_of(http, stack.base_url, mixed) == {"beta-chat", "gpt-4"}
    assert chat(http, stack.base_url, mixed, "beta-chat").status_code == 200
    error_of(chat(http, stack.base_url, mixed, "text-embedding-ada-002"), 403, "permission_denied")


def test_a_team_from_default_team_settings_bounds_its_keys(http, stack):
    # seed 003, "Restrict models by team_id".
    key = generate(http, stack, team_id="litellm-dev")["key"]
    assert chat(http, stack.base_url, key, "gpt-3.5-turbo").status_code == 200
    resp = chat(http, stack.base_url, key, "gpt-4")
    error = error_of(resp, 403, "permission_denied")
    assert "litellm-dev" in error["message"] and "gpt-3.5-turbo" in error["message"] and "gpt-4" in error["message"]
    assert models_of(http, stack.base_url, key) == {"gpt-3.5-turbo"}

    # The key's own list cannot widen the team's.
    wider = generate(http, stack, team_id="litellm-dev", models=["gpt-4", "gpt-3.5-turbo"])["key"]
    assert chat(http, stack.base_url, wider, "gpt-3.5-turbo").status_code == 200
    error_of(chat(http, stack.base_url, wider, "gpt-4"), 403, "permission_denied")

    # A team may name an access group.
    beta = generate(http, stack, team_id="beta-team")["key"]
    assert chat(http, stack.base_url, beta, "beta-chat").status_code == 200
    error = error_of(chat(http, stack.base_url, beta, "gpt-4"), 403, "permission_denied")
    assert "beta-chat" in error["message"]

    # A team that is not configured does not restrict.
    free = generate(http, stack, team_id="core-infra")["key"]
    assert chat(http, stack.base_url, free, "gpt-4").status_code == 200


# --- upper bounds and defaults -------------------------------------------------------------


def test_values_above_the_upper_bounds_are_lowered_to_them(http, stack):
    before = time.time()
    body = generate(http, stack, base=stack.bounds_url, max_budget=200, duration="60d", tpm_limit=5000)
    assert body["max_budget"] == 100
    assert body["tpm_limit"] == 1000
    assert before + 30 * 86400 - 1 <= when(body["expires"]) <= time.time() + 30 * 86400 + 1
    known_on(http, stack.base_url, body["key"])
    shown = info(http, stack, body["key"]).json()["info"]
    assert shown["max_budget"] == 100 and shown["tpm_limit"] == 1000
    assert when(shown["expires"]) == pytest.approx(when(body["expires"]), abs=0.01)

    within = generate(http, stack, base=stack.bounds_url, max_budget=50, duration="20m", tpm_limit=10)
    assert within["max_budget"] == 50 and within["tpm_limit"] == 10
    assert when(within["expires"]) <= time.time() + 20 * 60 + 1

    explicit_null = generate(http, stack, base=stack.bounds_url, max_budget=None, duration=None)
    assert explicit_null["max_budget"] == 100
    assert explicit_null["expires"] is not None and when(explicit_null["expires"]) <= time.time() + 30 * 86400 + 1

    # The main edge has no bounds.
    unbounded = generate(http, stack, max_budget=200, duration="60d")
    assert unbounded["max_budget"] == 200 and when(unbounded["expires"]) > time.time() + 59 * 86400


def test_upper_bounds_also_bound_a_param_the_request_leaves_out(http, stack):
    """seed 003: "upperbound of $100 / of 30 days *for all* /key/generate requests". A request
    that leaves max_budget and duration out asks for an unlimited, never-expiring key, just like
    one that sends them as null (which the bounds do lower)."""
    body = generate(http, stack, base=stack.bounds_url, models=["gpt-4"])
    assert body["max_budget"] == 100, f"max_budget without a value under an upper bound of 100: {body['max_budget']}"
    assert body["expires"] is not None, "a key made under a 30d duration bound never expires"
    assert when(body["expires"]) <= time.time() + 30 * 86400 + 1


def test_defaults_fill_what_a_generate_request_leaves_out(http, stack):
    body = generate(http, stack, base=stack.defaults_url)
    assert body["max_budget"] == 1.5
    assert body["models"] == ["gpt-3.5-turbo"]
    assert body["expires"] is None  # the default duration is blank: never expires
    assert body["metadata"] == {"setting": "default"}
    assert body["team_id"] == "core-infra"
    # Defaults are part of the stored key: the main edge (no defaults of its own) enforces them.
    known_on(http, stack.base_url, body["key"])
    assert chat(http, stack.base_url, body["key"], "gpt-3.5-turbo").status_code == 200
    error_of(chat(http, stack.base_url, body["key"], "gpt-4"), 403, "permission_denied")

    given = generate(
        http, stack, base=stack.defaults_url, max_budget=3, models=["gpt-4"], metadata={"app": "x"}, team_id=None, duration="1h"
    )
    assert given["max_budget"] == 3 and given["models"] == ["gpt-4"] and given["metadata"] == {"app": "x"}
    assert given["team_id"] is None
    assert when(given["expires"]) <= time.time() + 3600 + 1
    known_on(http, stack.base_url, given["key"])
    assert chat(http, stack.base_url, given["key"], "gpt-4").status_code == 200


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"duration": "5 parsecs"}, "duration"),
        ({"duration": 30}, "duration"),
        ({"budget_duration": "monthly"}, "budget_duration"),
        ({"max_budget": -1}, "max_budget"),
        ({"soft_budget": -0.5}, "soft_budget"),
        ({"spend": -2}, "spend"),
        ({"tpm_limit": -1}, "tpm_limit"),
        ({"rpm_limit": -1}, "rpm_limit"),
        ({"max_parallel_requests": -1}, "max_parallel_requests"),
        ({"model_max_budget": {"gpt-4": -1}}, "model_max_budget"),
        ({"models": "gpt-4"}, "models"),
        ({"metadata": ["a"]}, "metadata"),
        ({"tpm_limit": "many"}, "tpm_limit"),
        ({"max_budget": "ten"}, "max_budget"),
        ({"max_budget": 1e999}, "max_budget"),
        ({"key_alias": 7}, "key_alias"),
        ({"blocked": "no"}, "blocked"),
    ],
)
def test_bad_generate_params_are_400_naming_the_field(http, stack, body, param):
    resp = http.post(
        f"{stack.base_url}/key/generate",
        headers={**auth(MASTER_KEY), "content-type": "application/json"},
        content=json.dumps(body).replace("Infinity", "1e999").encode(),
    )
    error = error_of(resp, 400, "invalid_request_error")
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"


def test_a_bad_body_is_400(http, stack):
    for content in (b"{", b"[1, 2]", b"null"):
        resp = http.post(
            f"{stack.base_url}/key/generate", headers={**auth(MASTER_KEY), "content-type": "application/json"}, content=content
        )
        assert resp.status_code == 400, (content, resp.text)
        assert resp.json()["error"]["type"] == "invalid_request_error"


def test_a_refused_generate_stores_no_key(http, stack):
    def count() -> int:
        return http.get(f"{stack.base_url}/key/list", headers=auth(MASTER_KEY)).json()["total_count"]

    before = count()
    assert admin(http, stack, "/key/generate", {"models": ["gpt-4"], "max_budget": -1}).status_code == 400
    assert count() == before


def test_an_absurd_duration_is_refused_not_a_500(http, stack):
    """`duration: "99999999999d"` parses (it is digits and a unit) but is past any date: the answer
    must be a 400 naming `duration` (or a key that works), never a 500 with a key stored anyway."""

    def count() -> int:
        return http.get(f"{stack.base_url}/key/list", headers=auth(MASTER_KEY)).json()["total_count"]

    before = count()
    resp = admin(http, stack, "/key/generate", {"duration": "99999999999d"})
    stored = count() - before
    assert resp.status_code in (200, 400), f"{resp.status_code}: {resp.text}; keys stored by the call: {stored}"
    if resp.status_code == 400:
        assert resp.json()["error"]["param"] == "duration"
        assert stored == 0
    else:
        PLAINTEXTS.append(resp.json()["key"])
        assert chat(http, stack.base_url, resp.json()["key"]).status_code == 200
