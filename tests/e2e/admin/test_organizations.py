"""Organizations as a LiteLLM proxy user scripts them, with plain HTTP as LiteLLM's proxy docs
show each call: every `/organization/*` route, the bounds an organization puts on its teams'
models, budgets and rate limits, reads scoped to one's own organization (own 200, foreign 403, no
key 401) and organization admins. One edge, a worker and metering on a real nats-server (this
module's own stack)."""

from __future__ import annotations

import pytest

from tests.e2e.admin.orgs_support import call, get, new_org, new_team, new_user
from tests.e2e.admin.support import (
    PREFIX,
    admin,
    chat,
    error_of,
    generate,
    start_spend_stack,
    uid,
    write_keys_config,
)
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("orgs-stack")
    config = write_keys_config(root / "keys.yaml", upstream.base_url, {})
    s = start_spend_stack(root, nats_server.url, PREFIX + "org", upstream, config)
    yield s
    s.stop()


# --- the /organization/* routes ---------------------------------------------------------------


def test_organization_routes_in_litellm_shapes(http, stack):
    # /organization/new takes the budget and the models on the organization itself.
    made = new_org(http, stack, models=["gpt-4"], max_budget=12.5, budget_duration="30d", tpm_limit=1000)
    org_id = made["organization_id"]
    assert made["models"] == ["gpt-4"] and made["max_budget"] == 12.5 and made["budget_duration"] == "30d"
    assert made["litellm_budget_table"]["max_budget"] == 12.5 and made["litellm_budget_table"]["tpm_limit"] == 1000
    assert made["spend"] == 0 and made["budget_reset_at"] is not None and made["created_at"]
    error = error_of(admin(http, stack, "/organization/new", {"models": []}), 400, "invalid_request_error")
    assert error["param"] == "organization_alias"
    error = error_of(
        admin(http, stack, "/organization/new", {"organization_alias": "x", "max_budget": -1}), 400, "invalid_request_error"
    )
    assert error["param"] == "max_budget"
    per_model = admin(http, stack, "/organization/new", {"organization_alias": "x", "model_max_budget": {"gpt-4": 1}})
    assert error_of(per_model, 400, "invalid_request_error")["param"] == "model_max_budget"
    taken = admin(http, stack, "/organization/new", {"organization_alias": "again", "organization_id": org_id})
    assert "already exists" in error_of(taken, 400, "invalid_request_error")["message"]

    # info (GET, and the older POST with a list), list.
    shown = get(http, stack, "/organization/info", organization_id=org_id).json()
    assert shown["organization_alias"] == made["organization_alias"] and shown["teams"] == [] and shown["members"] == []
    assert [o["organization_id"] for o in admin(http, stack, "/organization/info", {"organizations": [org_id]}).json()] == [
        org_id
    ]
    assert org_id in [o["organization_id"] for o in get(http, stack, "/organization/list").json()]
    error_of(get(http, stack, "/organization/info", organization_id=uid("no-org")), 404, "not_found")

    # update is PATCH (as LiteLLM's); POST is taken too.
    resp = call(http, stack, "PATCH", "/organization/update", {"organization_id": org_id, "models": ["gpt-4", "gpt-3.5-turbo"]})
    assert resp.status_code == 200 and resp.json()["models"] == ["gpt-4", "gpt-3.5-turbo"], resp.text
    resp = admin(http, stack, "/organization/update", {"organization_id": org_id, "organization_alias": "renamed"})
    assert resp.json()["organization_alias"] == "renamed" and resp.json()["max_budget"] == 12.5
    error_of(call(http, stack, "PATCH", "/organization/update", {"organization_id": uid("no-org")}), 404, "not_found")

    # member_add by user id and by e-mail (the existing user with that address, or a new one).
    known = new_user(http, stack, user_email=f"{uid('known')}@example.com")
    fresh_email = f"{uid('fresh')}@example.com"
    resp = admin(
        http,
        stack,
        "/organization/member_add",
        {
            "organization_id": org_id,
            "member": [
                {"role": "org_admin", "user_id": known["user_id"]},
                {"role": "internal_user", "user_email": fresh_email},
            ],
        },
    )
    assert resp.status_code == 200, resp.text
    added = resp.json()
    assert added["organization_id"] == org_id
    assert [u["user_id"] for u in added["updated_users"]] == [known["user_id"], fresh_email]
    assert [(m["user_id"], m["user_role"]) for m in added["updated_organization_memberships"]] == [
        (known["user_id"], "org_admin"),
        (fresh_email, "internal_user"),
    ]
    assert get(http, stack, "/user/info", user_id=fresh_email).status_code == 200  # the new user exists
    bad = admin(http, stack, "/organization/member_add", {"organization_id": org_id, "member": {"role": "owner", "user_id": "x"}})
    assert error_of(bad, 400, "invalid_request_error")["param"] == "member"

    # member_update (PATCH) and member_delete (DELETE), by e-mail as well as by id.
    resp = call(
        http,
        stack,
        "PATCH",
        "/organization/member_update",
        {"organization_id": org_id, "user_email": fresh_email, "role": "org_admin"},
    )
    assert resp.status_code == 200 and resp.json()["user_role"] == "org_admin", resp.text
    resp = call(http, stack, "DELETE", "/organization/member_delete", {"organization_id": org_id, "user_id": fresh_email})
    assert resp.status_code == 200 and resp.json()["user_id"] == fresh_email, resp.text
    members = get(http, stack, "/organization/info", organization_id=org_id).json()["members"]
    assert [(m["user_id"], m["user_role"]) for m in members] == [(known["user_id"], "org_admin")]
    gone = call(http, stack, "DELETE", "/organization/member_delete", {"organization_id": org_id, "user_id": fresh_email})
    error_of(gone, 404, "not_found")

    # A team in it shows on its info; delete refuses while it has teams, then deletes.
    team = new_team(http, stack, organization_id=org_id, models=["gpt-4"])
    assert team.status_code == 200 and team.json()["organization_id"] == org_id, team.text
    team_id = team.json()["team_id"]
    assert [t["team_id"] for t in get(http, stack, "/organization/info", organization_id=org_id).json()["teams"]] == [team_id]
    refused = call(http, stack, "DELETE", "/organization/delete", {"organization_ids": [org_id]})
    assert team_id in error_of(refused, 400, "invalid_request_error")["message"]
    assert admin(http, stack, "/team/update", {"team_id": team_id, "organization_id": None}).status_code == 200
    resp = call(http, stack, "DELETE", "/organization/delete", {"organization_ids": [org_id]})
    assert resp.status_code == 200 and [o["organization_id"] for o in resp.json()] == [org_id], resp.text
    error_of(get(http, stack, "/organization/info", organization_id=org_id), 404, "not_found")
    error_of(call(http, stack, "DELETE", "/organization/delete", {"organization_ids": [org_id]}), 404, "not_found")


def test_only_proxy_admins_create_change_and_delete_organizations(http, stack):
    org_id = new_org(http, stack)["organization_id"]
    internal = new_user(http, stack)["key"]
    viewer = new_user(http, stack, user_role="proxy_admin_viewer")["key"]
    for key in (internal, viewer):
        error_of(admin(http, stack, "/organization/new", {"organization_alias": "x"}, key=key), 403, "permission_denied")
        error_of(call(http, stack, "PATCH", "/organization/update", {"organization_id": org_id}, key), 403, "permission_denied")
        error_of(
            call(http, stack, "DELETE", "/organization/delete", {"organization_ids": [org_id]}, key), 403, "permission_denied"
        )
        member = {"organization_id": org_id, "member": {"user_id": "x"}}
        error_of(admin(http, stack, "/organization/member_add", member, key=key), 403, "permission_denied")
    for key in (None, "sk-not-a-key-0000"):
        error_of(admin(http, stack, "/organization/new", {"organization_alias": "x"}, key=key), 401, "invalid_api_key")
        error_of(get(http, stack, "/organization/list", key), 401, "invalid_api_key")
    assert org_id in [o["organization_id"] for o in get(http, stack, "/organization/list", viewer).json()]


# --- scoped reads and organization admins -----------------------------------------------------


def test_members_read_their_own_organization_and_org_admins_manage_it(http, stack):
    org_id, other_id = new_org(http, stack, models=["gpt-4"])["organization_id"], new_org(http, stack)["organization_id"]
    boss, member, outsider = new_user(http, stack), new_user(http, stack), new_user(http, stack)
    added = admin(
        http,
        stack,
        "/organization/member_add",
        {
            "organization_id": org_id,
            "member": [{"role": "org_admin", "user_id": boss["user_id"]}, {"user_id": member["user_id"]}],
        },
    )
    assert added.status_code == 200, added.text

    # Own organization 200, a foreign one 403, no key 401; the list shows only one's own.
    for key in (boss["key"], member["key"]):
        assert get(http, stack, "/organization/info", key, organization_id=org_id).status_code == 200
        error = error_of(get(http, stack, "/organization/info", key, organization_id=other_id), 403, "permission_denied")
        assert error["param"] == "organization_id"
        assert [o["organization_id"] for o in get(http, stack, "/organization/list", key).json()] == [org_id]
    error_of(get(http, stack, "/organization/info", outsider["key"], organization_id=org_id), 403, "permission_denied")
    assert get(http, stack, "/organization/list", outsider["key"]).json() == []
    error_of(get(http, stack, "/organization/info", None, organization_id=org_id), 401, "invalid_api_key")

    # An org admin adds members to its organization (not to another), and creates teams in it.
    newcomer = uid("newcomer")
    resp = admin(
        http, stack, "/organization/member_add", {"organization_id": org_id, "member": {"user_id": newcomer}}, key=boss["key"]
    )
    assert resp.status_code == 200, resp.text
    foreign = {"organization_id": other_id, "member": {"user_id": newcomer}}
    error_of(admin(http, stack, "/organization/member_add", foreign, key=boss["key"]), 403, "permission_denied")
    error_of(admin(http, stack, "/organization/member_add", foreign, key=member["key"]), 403, "permission_denied")
    team = new_team(http, stack, key=boss["key"], organization_id=org_id)
    assert team.status_code == 200, team.text
    assert [(m["user_id"], m["role"]) for m in team.json()["members_with_roles"]] == [(boss["user_id"], "admin")]
    for key, params in (
        (boss["key"], {"organization_id": other_id}),
        (boss["key"], {}),
        (member["key"], {"organization_id": org_id}),
    ):
        error = error_of(new_team(http, stack, key=key, **params), 403, "permission_denied")
        assert "org_admin" in error["message"]

    # An org admin reads and manages the teams of its organization (not others).
    made_by_admin = new_team(http, stack, organization_id=org_id).json()["team_id"]
    assert get(http, stack, "/team/info", boss["key"], team_id=made_by_admin).status_code == 200
    assert made_by_admin in [t["team_id"] for t in get(http, stack, "/team/list", boss["key"]).json()]
    added = admin(http, stack, "/team/member_add", {"team_id": made_by_admin, "member": {"user_id": newcomer}}, key=boss["key"])
    assert added.status_code == 200, added.text
    outside = new_team(http, stack, organization_id=other_id).json()["team_id"]
    error_of(get(http, stack, "/team/info", boss["key"], team_id=outside), 403, "permission_denied")
    outside_add = {"team_id": outside, "member": {"user_id": newcomer}}
    error_of(admin(http, stack, "/team/member_add", outside_add, key=boss["key"]), 403, "permission_denied")
    error_of(
        admin(http, stack, "/team/member_add", {"team_id": made_by_admin, "member": {"user_id": "x"}}, key=member["key"]),
        403,
        "permission_denied",
    )

    # A key of a team in the organization reads it (with no id: its team's organization).
    team_key = generate(http, stack, team_id=team.json()["team_id"])["key"]
    for params in ({}, {"organization_id": org_id}):
        resp = get(http, stack, "/organization/info", team_key, **params)
        assert resp.status_code == 200 and resp.json()["organization_id"] == org_id, resp.text
    error_of(get(http, stack, "/organization/info", team_key, organization_id=other_id), 403, "permission_denied")


# --- bounds on teams --------------------------------------------------------------------------


def test_an_organization_bounds_its_teams_models_and_budgets(http, stack):
    org_id = new_org(http, stack, models=["gpt-4", "beta-models"], max_budget=2.0)["organization_id"]

    # A team cannot be given what its organization lacks: a model, a bigger budget, an unknown organization.
    error = error_of(new_team(http, stack, organization_id=org_id, models=["gpt-3.5-turbo"]), 400, "invalid_request_error")
    assert error["param"] == "models" and "gpt-3.5-turbo" in error["message"]
    error = error_of(new_team(http, stack, organization_id=org_id, max_budget=5), 400, "invalid_request_error")
    assert error["param"] == "max_budget"
    error = error_of(new_team(http, stack, organization_id=uid("no-org")), 400, "invalid_request_error")
    assert error["param"] == "organization_id"
    team = new_team(http, stack, organization_id=org_id, models=["gpt-4", "beta-chat"], max_budget=1.5)
    assert team.status_code == 200, team.text  # beta-chat is in the organization's access group beta-models
    team_id = team.json()["team_id"]
    bad = admin(http, stack, "/team/update", {"team_id": team_id, "models": ["gpt-4", "my-paid-tier"]})
    assert error_of(bad, 400, "invalid_request_error")["param"] == "models"
    bad = admin(http, stack, "/team/model/add", {"team_id": team_id, "models": ["gpt-3.5-turbo"]})
    assert error_of(bad, 400, "invalid_request_error")["param"] == "models"
    assert admin(http, stack, "/team/update", {"team_id": team_id, "max_budget": 3}).status_code == 400
    # A team moved into an organization is checked as well.
    wide = new_team(http, stack, models=["gpt-3.5-turbo"]).json()["team_id"]
    assert admin(http, stack, "/team/update", {"team_id": wide, "organization_id": org_id}).status_code == 400

    # A team with no model list (every model) still calls only what its organization has.
    open_team = new_team(http, stack, organization_id=org_id).json()["team_id"]
    key = generate(http, stack, team_id=open_team)["key"]
    assert chat(http, stack.base_url, key, "gpt-4").status_code == 200
    error = error_of(chat(http, stack.base_url, key, "gpt-3.5-turbo"), 403, "permission_denied")
    assert f"Organization {org_id}" in error["message"]
    # A blocked organization's teams' keys are refused (401, as a blocked team's), then served again.
    assert admin(http, stack, "/organization/update", {"organization_id": org_id, "blocked": True}).status_code == 200
    assert "blocked" in error_of(chat(http, stack.base_url, key, "gpt-4"), 401, "invalid_api_key")["message"]
    assert admin(http, stack, "/organization/update", {"organization_id": org_id, "blocked": False}).status_code == 200
    assert chat(http, stack.base_url, key, "gpt-4").status_code == 200
    # The organization's models narrowed later bound its teams' keys at once.
    assert (
        call(http, stack, "PATCH", "/organization/update", {"organization_id": org_id, "models": ["beta-models"]}).status_code
        == 200
    )
    eventually_sync(
        lambda: chat(http, stack.base_url, key, "gpt-4").status_code == 403, "the narrowed models to apply", timeout=5
    )
    # A team whose models its organization no longer has can still be changed otherwise (blocked, say).
    assert admin(http, stack, "/team/block", {"team_id": team_id}).status_code == 200
    assert admin(http, stack, "/team/update", {"team_id": team_id, "team_alias": "kept"}).status_code == 200


def test_requests_of_a_teams_keys_count_against_its_organization_budget(http, stack):
    org_id = new_org(http, stack, max_budget=10.0)["organization_id"]
    teams = [new_team(http, stack, organization_id=org_id).json()["team_id"] for _ in range(2)]
    keys = [generate(http, stack, team_id=t)["key"] for t in teams]
    ids = []
    for key in keys:
        for _ in range(2):
            resp = chat(http, stack.base_url, key)
            assert resp.status_code == 200, resp.text
            ids.append(resp.headers["x-request-id"])
    rows = stack.usage_rows(ids)
    total = sum(r["cost"] for r in rows.values())
    assert total > 0

    # Metering settles every request of both teams into the organization's ledger: its spend is theirs.
    def settled():
        shown = get(http, stack, "/organization/info", organization_id=org_id).json()
        return shown if shown["spend"] == pytest.approx(total, abs=1e-9) else None

    shown = eventually_sync(settled, "the organization's ledger to be settled", timeout=20)
    assert sorted(t["team_id"] for t in shown["teams"]) == sorted(teams)

    # Once the organization's budget cannot pay for a request, every team's key is refused, naming it.
    assert admin(http, stack, "/organization/update", {"organization_id": org_id, "max_budget": total}).status_code == 200

    def refused():
        resp = chat(http, stack.base_url, keys[1])
        return resp if resp.status_code == 429 else None

    resp = eventually_sync(refused, "the organization's budget to refuse", timeout=5)
    error = error_of(resp, 429, "budget_exceeded")
    assert f"organization {org_id}" in error["message"]

    # A budget object named by `budget_id` binds the organization in place of its own limits.
    budget_id = uid("tier")
    assert admin(http, stack, "/budget/new", {"budget_id": budget_id, "max_budget": 50.0}).status_code == 200
    resp = admin(http, stack, "/organization/update", {"organization_id": org_id, "budget_id": budget_id})
    assert resp.status_code == 200 and resp.json()["litellm_budget_table"]["max_budget"] == 50.0, resp.text
    assert chat(http, stack.base_url, keys[1]).status_code == 200
    unknown = admin(http, stack, "/organization/update", {"organization_id": org_id, "budget_id": uid("no-budget")})
    assert error_of(unknown, 400, "invalid_request_error")["param"] == "budget_id"


def test_an_organization_rate_limit_holds_across_its_teams(http, stack):
    org_id = new_org(http, stack, rpm_limit=3)["organization_id"]
    keys = [
        generate(http, stack, team_id=new_team(http, stack, organization_id=org_id).json()["team_id"])["key"] for _ in range(2)
    ]
    statuses = [chat(http, stack.base_url, keys[i % 2]).status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    error = error_of(chat(http, stack.base_url, keys[0]), 429, "rate_limit_exceeded")
    assert f"organization {org_id}" in error["message"] and "3 requests per minute" in error["message"]
