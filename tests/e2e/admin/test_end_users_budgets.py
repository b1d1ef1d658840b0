"""End users (LiteLLM's customers) and budget objects, with plain HTTP as LiteLLM's proxy docs show
each call and the openai SDK's `user=` for attribution: `/end_user/*` and its `/customer/*`
aliases, the end user on the usage row and in its spend, blocking, an end user's budget and rpm
limit holding, `/budget/*` objects bounding a key and an end user, and the wording of a budget
refusal. One edge, a worker and metering on a real nats-server (this module's own stack)."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
import yaml

from tests.e2e.admin.support import HELLO, PREFIX, admin, auth, error_of, generate, start_spend_stack, uid, write_keys_config
from tests.e2e.stack import MASTER_KEY
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("end-users-stack")
    config = write_keys_config(root / "keys.yaml", upstream.base_url, {})
    settings = yaml.safe_load(config.read_text())
    settings["general_settings"]["user_header_name"] = "X-OpenWebUI-User-Id"  # as Open WebUI sends it
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    s = start_spend_stack(root, nats_server.url, PREFIX + "eu", upstream, config)
    yield s
    s.stop()


def get(http, stack, path: str, caller: str | None = MASTER_KEY, **params) -> httpx.Response:
    return http.get(f"{stack.base_url}{path}", params=params, headers=auth(caller) if caller else {})


def ok(resp: httpx.Response) -> dict | list:
    assert resp.status_code == 200, resp.text
    return resp.json()


def client(stack, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)


def ask(stack, key: str = MASTER_KEY, user: str | None = None, headers: dict | None = None, model: str = "gpt-4"):
    """One chat completion through the openai SDK; (its x-request-id, the raw response)."""
    kwargs: dict = {"model": model, "messages": HELLO, "max_tokens": 3}
    if user is not None:
        kwargs["user"] = user
    raw = client(stack, key).chat.completions.with_raw_response.create(**kwargs, extra_headers=headers or {})
    raw.parse()
    return raw.headers["x-request-id"], raw


def refused_until_spent(stack, key: str = MASTER_KEY, user: str | None = None, most: int = 60) -> tuple[list[str], dict]:
    """Requests until the budget refuses one: (the request ids served, the refusal's error)."""
    served = []
    for _ in range(most):
        try:
            served.append(ask(stack, key, user)[0])
        except openai.RateLimitError as exc:
            error = exc.response.json()["error"]
            assert error["code"] == "budget_exceeded", error
            return served, error
    raise AssertionError(f"no refusal after {most} requests")


# --- /end_user/* and /customer/* --------------------------------------------------------------


def test_end_user_routes_and_their_customer_aliases(http, stack):
    cust = uid("cust")
    made = ok(admin(http, stack, "/end_user/new", {"user_id": cust, "alias": "Acme", "max_budget": 5, "rpm_limit": 100}))
    assert (made["user_id"], made["alias"], made["blocked"], made["spend"]) == (cust, "Acme", False, 0)
    assert made["litellm_budget_table"]["max_budget"] == 5 and made["litellm_budget_table"]["rpm_limit"] == 100
    error_of(admin(http, stack, "/customer/new", {"user_id": cust}), 400, "invalid_request_error")  # exists already

    for prefix in ("/end_user", "/customer"):
        shown = ok(get(http, stack, f"{prefix}/info", end_user_id=cust))
        assert (shown["user_id"], shown["alias"], shown["max_budget"]) == (cust, "Acme", 5)
        assert cust in {e["user_id"] for e in ok(get(http, stack, f"{prefix}/list"))}

    updated = ok(admin(http, stack, "/customer/update", {"user_id": cust, "alias": "Acme Inc", "max_budget": 7}))
    assert (updated["alias"], updated["max_budget"], updated["rpm_limit"]) == ("Acme Inc", 7, 100)
    assert ok(get(http, stack, "/end_user/info", end_user_id=cust))["alias"] == "Acme Inc"

    blocked = ok(admin(http, stack, "/customer/block", {"user_ids": [cust]}))
    assert [u["blocked"] for u in blocked["blocked_users"]] == [True]
    assert ok(get(http, stack, "/customer/info", end_user_id=cust))["blocked"] is True
    ok(admin(http, stack, "/end_user/unblock", {"user_ids": [cust]}))
    assert ok(get(http, stack, "/end_user/info", end_user_id=cust))["blocked"] is False

    # Bad input: the right status and an OpenAI-style error naming the field.
    assert (
        error_of(admin(http, stack, "/end_user/new", {"user_id": uid("c"), "max_budget": -1}), 400, "invalid_request_error")[
            "param"
        ]
        == "max_budget"
    )
    assert error_of(admin(http, stack, "/end_user/new", {"alias": "no id"}), 400, "invalid_request_error")["param"] == "user_id"
    assert (
        error_of(
            admin(http, stack, "/end_user/new", {"user_id": uid("c"), "budget_id": "no-such"}), 400, "invalid_request_error"
        )["param"]
        == "budget_id"
    )
    error_of(get(http, stack, "/end_user/info", end_user_id=uid("nobody")), 404, "not_found")
    error_of(admin(http, stack, "/end_user/update", {"user_id": uid("nobody"), "alias": "x"}), 404, "not_found")
    error_of(admin(http, stack, "/end_user/unblock", {"user_ids": [uid("nobody")]}), 404, "not_found")

    # Admin routes: no key 401, a key that is not an admin's 403.
    internal = generate(http, stack)["key"]
    error_of(get(http, stack, "/end_user/list", None), 401, "invalid_api_key")
    error_of(get(http, stack, "/end_user/info", internal, end_user_id=cust), 403, "permission_denied")
    error_of(admin(http, stack, "/end_user/block", {"user_ids": [cust]}, key=internal), 403, "permission_denied")

    ok(admin(http, stack, "/end_user/delete", {"user_ids": [cust]}))
    error_of(get(http, stack, "/end_user/info", end_user_id=cust), 404, "not_found")
    error_of(admin(http, stack, "/customer/delete", {"user_ids": [cust]}), 404, "not_found")


def test_the_user_field_attributes_a_request_to_its_end_user_on_the_row_and_in_spend(http, stack):
    cust, other = uid("cust"), uid("cust")
    key = generate(http, stack, models=["gpt-4"])["key"]
    ids = [ask(stack, key, user=cust)[0], ask(stack, key, user=cust)[0]]
    by_header = ask(stack, key, headers={"x-litellm-end-user-id": other})[0]  # LiteLLM's end-user header
    header_wins = ask(stack, key, user=cust, headers={"x-litellm-end-user-id": other})[0]
    anonymous = ask(stack, key)[0]
    claude = anthropic.Anthropic(base_url=stack.base_url, api_key=key, max_retries=0)
    raw = claude.messages.with_raw_response.create(
        model="gpt-4", max_tokens=3, messages=HELLO, metadata={"user_id": other + "-messages"}
    )
    raw.parse()
    by_metadata = raw.headers["x-request-id"]
    by_named_header = ask(stack, key, user=cust, headers={"X-OpenWebUI-User-Id": other + "-webui"})[0]

    rows = stack.usage_rows([*ids, by_header, header_wins, anonymous, by_metadata, by_named_header])
    assert rows[by_named_header]["end_user"] == other + "-webui"  # general_settings.user_header_name
    assert rows[by_metadata]["end_user"] == other + "-messages"  # Anthropic's metadata.user_id
    assert [rows[i]["end_user"] for i in ids] == [cust, cust]
    assert (rows[by_header]["end_user"], rows[header_wins]["end_user"], rows[anonymous]["end_user"]) == (other, other, None)
    cost = sum(rows[i]["cost"] for i in ids)
    assert cost > 0

    # An end user nobody stored is metered all the same: /end_user/info shows its spend (LiteLLM
    # creates the customer on its first request), /end_user/list lists it.
    eventually_sync(
        lambda: abs(ok(get(http, stack, "/end_user/info", end_user_id=cust))["spend"] - cost) < 1e-9,
        "the end user's spend to be settled",
        timeout=20,
    )
    assert {cust, other} <= {e["user_id"] for e in ok(get(http, stack, "/end_user/list"))}
    logs = ok(get(http, stack, "/spend/logs", end_user=cust))
    assert {entry["request_id"] for entry in logs} == set(ids)
    assert {entry["end_user"] for entry in logs} == {cust}
    report = {e["customer"]: e for e in ok(get(http, stack, "/global/spend/report", group_by="customer"))}
    assert report[cust]["requests"] == 2 and abs(report[cust]["total_spend"] - cost) < 1e-9, report[cust]


def test_a_blocked_end_user_is_refused_and_unblocked_served_again(http, stack):
    cust = uid("cust")
    key = generate(http, stack, models=["gpt-4"])["key"]
    ask(stack, key, user=cust)
    ok(admin(http, stack, "/end_user/block", {"user_ids": [cust]}))  # (an end user only requests named)
    with pytest.raises(openai.BadRequestError) as refused:
        ask(stack, key, user=cust)
    error = refused.value.response.json()["error"]
    assert error["code"] == "end_user_blocked" and error["message"] == f"User blocked from making LLM API Calls. User={cust}"
    with pytest.raises(openai.BadRequestError):
        ask(stack, key, headers={"x-litellm-end-user-id": cust})
    refusal_id = refused.value.response.headers["x-request-id"]
    row = stack.usage_rows([refusal_id])[refusal_id]
    assert (row["status"], row["http_status"], row["end_user"]) == ("refused", 400, cust)
    ask(stack, key, user=uid("someone-else"))  # other end users of the key are served

    ok(admin(http, stack, "/customer/unblock", {"user_ids": [cust]}))
    ask(stack, key, user=cust)


def test_an_end_users_budget_and_rpm_limit_hold(http, stack):
    key = generate(http, stack, models=["gpt-4"])["key"]
    spender, budget = uid("spender"), 0.0003
    ok(admin(http, stack, "/end_user/new", {"user_id": spender, "max_budget": budget, "budget_duration": "30d"}))
    served, error = refused_until_spent(stack, key, spender)
    assert served, "the budget holds several requests before it refuses"
    assert f"end user {spender}" in error["message"] and "worst case" in error["message"], error
    rows = stack.usage_rows(served)
    assert sum(r["cost"] for r in rows.values()) <= budget + 1e-12
    ask(stack, key, user=uid("other"))  # the key itself is not bounded by the end user's budget
    info = ok(get(http, stack, "/end_user/info", end_user_id=spender))
    assert info["budget_reset_at"] is not None and info["budget_duration"] == "30d"

    limited = uid("limited")
    ok(admin(http, stack, "/end_user/new", {"user_id": limited, "rpm_limit": 2}))
    ask(stack, key, user=limited)
    ask(stack, key, user=limited)
    with pytest.raises(openai.RateLimitError) as third:
        ask(stack, key, user=limited)
    error = third.value.response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and f"end user {limited}" in error["message"], error
    ask(stack, key, user=uid("other"))


# --- /budget/* -------------------------------------------------------------------------------


def test_budget_routes(http, stack):
    tier = uid("tier")
    made = ok(admin(http, stack, "/budget/new", {"budget_id": tier, "max_budget": 10, "rpm_limit": 50, "budget_duration": "30d"}))
    assert (made["budget_id"], made["max_budget"], made["rpm_limit"], made["budget_duration"]) == (tier, 10, 50, "30d")
    error_of(admin(http, stack, "/budget/new", {"budget_id": tier}), 400, "invalid_request_error")
    assert [b["budget_id"] for b in ok(admin(http, stack, "/budget/info", {"budgets": [tier]}))] == [tier]
    assert ok(get(http, stack, "/budget/info", budget_id=tier))["max_budget"] == 10
    assert tier in {b["budget_id"] for b in ok(get(http, stack, "/budget/list"))}
    updated = ok(admin(http, stack, "/budget/update", {"budget_id": tier, "tpm_limit": 1000, "max_budget": 12}))
    assert (updated["max_budget"], updated["tpm_limit"], updated["rpm_limit"]) == (12, 1000, 50)
    generated = ok(admin(http, stack, "/budget/new", {"max_budget": 1}))
    assert generated["budget_id"]  # made up when not given

    error_of(admin(http, stack, "/budget/new", {"soft_budget": -2}), 400, "invalid_request_error")
    error_of(admin(http, stack, "/budget/new", {"budget_duration": "soon"}), 400, "invalid_request_error")
    error_of(admin(http, stack, "/budget/update", {"budget_id": uid("none"), "max_budget": 1}), 404, "not_found")
    error_of(get(http, stack, "/budget/info", budget_id=uid("none")), 404, "not_found")
    internal = generate(http, stack)["key"]
    error_of(admin(http, stack, "/budget/new", {}, key=internal), 403, "permission_denied")
    error_of(get(http, stack, "/budget/list", None), 401, "invalid_api_key")

    # A budget in use is not deleted from under its holders.
    key = generate(http, stack, budget_id=tier)
    assert key["budget_id"] == tier
    error = error_of(admin(http, stack, "/budget/delete", {"id": tier}), 400, "invalid_request_error")
    assert key["key_name"] in error["message"], error
    ok(admin(http, stack, "/key/update", {"key": key["key"], "budget_id": None}))
    ok(admin(http, stack, "/budget/delete", {"id": tier}))
    error_of(get(http, stack, "/budget/info", budget_id=tier), 404, "not_found")
    error_of(admin(http, stack, "/key/generate", {"budget_id": tier}), 400, "invalid_request_error")


def test_a_budget_object_bounds_a_key_and_an_end_user(http, stack):
    tier, budget = uid("tier"), 0.0003
    ok(admin(http, stack, "/budget/new", {"budget_id": tier, "max_budget": budget}))
    key = generate(http, stack, models=["gpt-4"], budget_id=tier)
    shown = ok(http.get(f"{stack.base_url}/key/info", params={"key": key["key"]}, headers=auth(MASTER_KEY)))["info"]
    assert (shown["budget_id"], shown["litellm_budget_table"]["max_budget"]) == (tier, budget), shown
    served, error = refused_until_spent(stack, key["key"])
    assert served and f"key {key['key_name']}" in error["message"], error
    assert sum(r["cost"] for r in stack.usage_rows(served).values()) <= budget + 1e-12
    # Each holder of the budget has its own spend: a second key of the tier is served.
    ask(stack, generate(http, stack, models=["gpt-4"], budget_id=tier)["key"])

    team_id = uid("team")
    assert ok(admin(http, stack, "/team/new", {"team_id": team_id, "budget_id": tier}))["budget_id"] == tier
    error_of(admin(http, stack, "/team/update", {"team_id": team_id, "budget_id": uid("none")}), 400, "invalid_request_error")

    slow = uid("slow-tier")
    ok(admin(http, stack, "/budget/new", {"budget_id": slow, "rpm_limit": 1}))
    cust = uid("cust")
    ok(admin(http, stack, "/end_user/new", {"user_id": cust, "budget_id": slow}))
    assert ok(get(http, stack, "/end_user/info", end_user_id=cust))["litellm_budget_table"]["rpm_limit"] == 1
    plain = generate(http, stack, models=["gpt-4"])["key"]
    ask(stack, plain, user=cust)
    with pytest.raises(openai.RateLimitError) as second:
        ask(stack, plain, user=cust)
    assert f"end user {cust}" in second.value.response.json()["error"]["message"]


# --- the wording of a budget refusal ----------------------------------------------------------


def test_a_budget_refusal_names_the_budget_its_spend_and_the_worst_case(http, stack):
    key = generate(http, stack, models=["gpt-4", "text-embedding-ada-002"], max_budget=0.0000001)
    with pytest.raises(openai.RateLimitError) as refused:
        ask(stack, key["key"])
    message = refused.value.response.json()["error"]["message"]
    assert message.startswith(f"Budget exceeded for key {key['key_name']}: max_budget $0.0000001, spend $0, "), message
    assert "0.000000," not in message and "e-0" not in message, message
    assert "needs at least $" in message and "worst case is $" in message, message

    # An embedding cannot be cut short: it needs its whole worst case.
    resp = http.post(
        f"{stack.base_url}/v1/embeddings",
        headers=auth(key["key"]),
        json={"model": "text-embedding-ada-002", "input": "hello there"},
    )
    message = error_of(resp, 429, "budget_exceeded")["message"]
    assert ", its worst case (" in message and "refused unless the whole of it fits" in message, message
    assert key["key"] not in resp.text


def test_a_members_budget_within_a_team_bounds_what_it_spends_there(http, stack):
    team_id, user_id, budget = uid("team"), uid("member"), 0.0003
    ok(admin(http, stack, "/team/new", {"team_id": team_id, "models": ["gpt-4"]}))
    ok(admin(http, stack, "/team/member_add", {"team_id": team_id, "member": {"user_id": user_id, "role": "user"}}))
    added, added_budget = uid("added"), 0.001
    ok(
        admin(
            http,
            stack,
            "/team/member_add",
            {"team_id": team_id, "member": {"user_id": added}, "max_budget_in_team": added_budget},
        )
    )
    member = next(
        m for m in ok(get(http, stack, "/team/info", team_id=team_id))["team_info"]["members_with_roles"] if m["user_id"] == added
    )
    assert ok(get(http, stack, "/budget/info", budget_id=member["budget_id"]))["max_budget"] == added_budget
    updated = ok(
        admin(http, stack, "/team/member_update", {"team_id": team_id, "user_id": user_id, "max_budget_in_team": budget})
    )
    assert updated["max_budget_in_team"] == budget and updated["budget_id"], updated
    error_of(
        admin(http, stack, "/team/member_update", {"team_id": team_id, "user_id": user_id, "budget_id": uid("none")}),
        400,
        "invalid_request_error",
    )
    in_team = generate(http, stack, user_id=user_id, team_id=team_id)["key"]
    served, error = refused_until_spent(stack, in_team)
    assert served and f"user {user_id} in team {team_id}" in error["message"], error
    assert sum(r["cost"] for r in stack.usage_rows(served).values()) <= budget + 1e-12
    ask(stack, generate(http, stack, user_id=user_id, models=["gpt-4"])["key"])  # outside the team: not bounded by it
    error = error_of(admin(http, stack, "/budget/delete", {"id": updated["budget_id"]}), 400, "invalid_request_error")
    assert f"user {user_id} in team {team_id}" in error["message"], error
