"""Tags as a LiteLLM proxy user sends them (plain HTTP, and the openai SDK's `extra_body` /
`extra_headers`): tags recorded on the usage rows from the body, the `x-litellm-tags` header and
the key, `/spend/tags` and `/global/spend/report?group_by=tag` exact against the rows, and a
required tag (`enforced_params`) refused then served. One edge, a worker and metering on a real
nats-server (this module's own stack)."""

from __future__ import annotations

import uuid

import openai
import pytest

from tests.e2e.admin.orgs_support import client, get, new_team, sdk_chat
from tests.e2e.admin.support import (
    HELLO,
    PREFIX,
    admin,
    auth,
    chat,
    error_of,
    generate,
    start_spend_stack,
    write_keys_config,
)
from tests.procs import REPO

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("tags-stack")
    config = write_keys_config(root / "keys.yaml", upstream.base_url, {})
    s = start_spend_stack(root, nats_server.url, PREFIX + "tag", upstream, config)
    yield s
    s.stop()


# --- tags -------------------------------------------------------------------------------------


def test_tags_from_the_body_the_header_and_the_key_are_on_the_usage_rows(http, stack, upstream):
    run = uuid.uuid4().hex[:6]
    key = generate(http, stack, metadata={"tags": [f"key-{run}"]})["key"]
    plain = generate(http, stack)["key"]
    from_body = sdk_chat(stack, key, extra_body={"metadata": {"tags": [f"job-{run}", f"task-{run}"]}})
    from_header = sdk_chat(stack, key, extra_headers={"x-litellm-tags": f"h1-{run}, h2-{run} ,"})
    both = sdk_chat(
        stack, plain, extra_body={"metadata": {"tags": [f"job-{run}"]}}, extra_headers={"x-litellm-tags": f"job-{run},h1-{run}"}
    )
    untagged = sdk_chat(stack, plain)
    rows = stack.usage_rows([from_body, from_header, both, untagged])
    assert rows[from_body]["tags"] == [f"job-{run}", f"task-{run}", f"key-{run}"]
    assert rows[from_header]["tags"] == [f"h1-{run}", f"h2-{run}", f"key-{run}"]
    assert rows[both]["tags"] == [f"job-{run}", f"h1-{run}"]  # the same tag counts once
    assert rows[untagged]["tags"] == []

    # Tags are the gateway's: the upstream gets the rest of `metadata` (OpenAI takes only strings
    # there, and the fake refuses anything else) and no top-level `tags`.
    kept = sdk_chat(stack, plain, extra_body={"metadata": {"tags": [f"job-{run}"], "purpose": "demo"}, "tags": [f"top-{run}"]})
    assert upstream.stats()["last_request"]["metadata"] == {"purpose": "demo"}
    assert "tags" not in upstream.stats()["last_request"]
    sdk_chat(stack, plain, extra_body={"metadata": {"tags": [f"job-{run}"]}})
    assert "metadata" not in upstream.stats()["last_request"]
    assert stack.usage_rows([kept])[kept]["tags"] == [f"job-{run}", f"top-{run}"]
    responses = http.post(
        f"{stack.base_url}/v1/responses",
        headers={**auth(plain), "x-litellm-tags": f"h1-{run}"},
        json={
            "model": "gpt-4",
            "input": "Hello",
            "max_output_tokens": 16,
            "metadata": {"tags": f"resp-{run}", "purpose": "demo"},  # the Responses API takes strings only
        },
    )
    assert responses.status_code == 200, responses.text
    assert upstream.stats()["last_responses"]["metadata"] == {"purpose": "demo"}
    responses_id = responses.headers["x-request-id"]
    assert stack.usage_rows([responses_id])[responses_id]["tags"] == [f"resp-{run}", f"h1-{run}"]

    # /spend/logs shows them as LiteLLM's `request_tags`.
    logs = get(http, stack, "/spend/logs", request_id=from_body).json()
    assert [log["request_tags"] for log in logs] == [[f"job-{run}", f"task-{run}", f"key-{run}"]]

    # Malformed tags are a 400 naming the field, with a refusal row.
    resp = http.post(
        f"{stack.base_url}/v1/chat/completions",
        headers=auth(plain),
        json={"model": "gpt-4", "messages": HELLO, "metadata": {"tags": "one"}, "max_tokens": 3},
    )
    assert resp.status_code == 200, resp.text  # one string is one tag
    resp = http.post(
        f"{stack.base_url}/v1/chat/completions",
        headers=auth(plain),
        json={"model": "gpt-4", "messages": HELLO, "metadata": {"tags": [1, 2]}},
    )
    assert error_of(resp, 400, "invalid_request_error")["param"] == "metadata.tags"


def test_spend_by_tag_is_exact_against_the_rows(http, stack):
    run = uuid.uuid4().hex[:6]
    a, b, c = f"a-{run}", f"b-{run}", f"c-{run}"
    key = generate(http, stack)["key"]
    ids = [
        sdk_chat(stack, key, extra_body={"metadata": {"tags": [a]}}),
        sdk_chat(stack, key, extra_body={"metadata": {"tags": [a, b]}}),
        sdk_chat(stack, key, extra_headers={"x-litellm-tags": b}),
        sdk_chat(stack, key, extra_headers={"x-litellm-tags": c}, max_tokens=9),
    ]
    failed = http.post(
        f"{stack.base_url}/v1/chat/completions",
        headers={**auth(key), "x-litellm-tags": c},
        json={"model": "err-500", "messages": HELLO},
    )
    ids.append(failed.headers["x-request-id"])
    rows = list(stack.usage_rows(ids).values())
    expected = {
        tag: (
            len([r for r in rows if tag in r["tags"]]),
            sum(r["cost"] for r in rows if tag in r["tags"]),
            sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows if tag in r["tags"]),
        )
        for tag in (a, b, c)
    }
    assert [n for n, _, _ in expected.values()] == [2, 2, 2]

    resp = get(http, stack, "/spend/tags")
    assert resp.status_code == 200, resp.text
    shown = {
        e["individual_request_tag"]: (e["log_count"], e["total_spend"])
        for e in resp.json()
        if e["individual_request_tag"] in expected
    }
    assert shown.keys() == expected.keys()
    for tag, (count, spend, _) in expected.items():
        assert shown[tag][0] == count and shown[tag][1] == pytest.approx(spend, abs=1e-9), tag
    spends = [e["total_spend"] for e in resp.json()]
    assert spends == sorted(spends, reverse=True)

    report = get(http, stack, "/global/spend/report", group_by="tag")
    assert report.status_code == 200, report.text
    entries = {e["tag"]: e for e in report.json() if e["tag"] in expected}
    assert entries.keys() == expected.keys()
    for tag, (count, spend, tokens) in expected.items():
        entry = entries[tag]
        assert (entry["requests"], entry["total_tokens"]) == (count, tokens), tag
        assert entry["total_spend"] == pytest.approx(spend, abs=1e-9), tag
    assert {m["model"] for m in entries[c]["models"]} == {"gpt-4", "err-500"}

    # The dashboard query of metering/sql says the same per day.
    sql = (REPO / "metering" / "sql" / "spend_by_tag_per_day.sql").read_text()
    daily = {r["tag"]: r for r in stack.query(sql, {"days": 1}) if r["tag"] in expected}
    for tag, (count, spend, tokens) in expected.items():
        row = daily[tag]
        assert (row["requests"], row["prompt_tokens"] + row["completion_tokens"]) == (count, tokens), tag
        assert row["cost"] == pytest.approx(spend, abs=1e-9), tag

    # Spend is for admins and admin viewers only.
    error_of(get(http, stack, "/spend/tags", key), 403, "permission_denied")
    error_of(get(http, stack, "/spend/tags", None), 401, "invalid_api_key")
    assert (
        error_of(get(http, stack, "/spend/tags", start_date="2025-13-01"), 400, "invalid_request_error")["param"] == "start_date"
    )


def test_a_key_or_team_requiring_tags_refuses_an_untagged_request_then_serves_a_tagged_one(http, stack):
    # LiteLLM's `enforced_params` on /key/generate (kept in the key's metadata), and in a team's metadata.
    made = generate(http, stack, enforced_params=["metadata.tags"], metadata={"owner": "ops"})
    assert made["metadata"] == {"owner": "ops", "enforced_params": ["metadata.tags"]}
    key = made["key"]
    team_id = new_team(http, stack, metadata={"enforced_params": ["metadata.tags"]}).json()["team_id"]
    team_key = generate(http, stack, team_id=team_id)["key"]
    for k in (key, team_key):
        with pytest.raises(openai.BadRequestError) as refused:
            client(stack, k).chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=5)
        assert refused.value.status_code == 400
        error = refused.value.body
        assert error["param"] == "metadata.tags" and "x-litellm-tags" in error["message"], error
        request_id = refused.value.response.headers["x-request-id"]
        row = stack.usage_rows([request_id])[request_id]
        assert (row["status"], row["http_status"]) == ("refused", 400)

    served = [
        sdk_chat(stack, key, extra_body={"metadata": {"tags": ["billing"]}}),
        sdk_chat(stack, team_key, extra_headers={"x-litellm-tags": "billing"}),
    ]
    rows = stack.usage_rows(served)
    assert [rows[i]["tags"] for i in served] == [["billing"], ["billing"]]
    assert all(rows[i]["status"] == "success" for i in served)


def test_enforced_params_are_set_and_lifted_with_key_update(http, stack):
    made = generate(http, stack, metadata={"owner": "ops"})
    resp = admin(http, stack, "/key/update", {"key": made["key"], "enforced_params": ["user"]})
    assert resp.status_code == 200 and resp.json()["metadata"] == {"owner": "ops", "enforced_params": ["user"]}, resp.text
    refused = chat(http, stack.base_url, made["key"])
    error = error_of(refused, 400, "invalid_request_error")
    assert error["param"] == "user"
    served = http.post(
        f"{stack.base_url}/v1/chat/completions",
        headers=auth(made["key"]),
        json={"model": "gpt-4", "messages": HELLO, "max_tokens": 3, "user": "end-user-1"},
    )
    assert served.status_code == 200, served.text
    bad = admin(http, stack, "/key/update", {"key": made["key"], "enforced_params": "user"})
    assert error_of(bad, 400, "invalid_request_error")["param"] == "enforced_params"
    lifted = admin(http, stack, "/key/update", {"key": made["key"], "enforced_params": None})
    assert lifted.json()["metadata"] == {"owner": "ops"}
    assert chat(http, stack.base_url, made["key"]).status_code == 200
