"""A request's tags as the edge reads them (gateway/tags.py), and the budgets an organization adds."""

from __future__ import annotations

import pytest

from gateway.auth import Principal
from gateway.budgets import covering
from gateway.enforced_params import fold_enforced_params
from gateway.errors import GatewayError
from gateway.tags import MAX_TAGS, body_tags, header_tags, tagged
from llmgw.contracts import Caller, KeyRecord, LedgerKind, OrganizationRecord, TeamRecord, ledger_key


def principal(key_meta: dict | None = None, team_meta: dict | None = None, org: OrganizationRecord | None = None) -> Principal:
    key = KeyRecord(token="t0", key_name="sk-...0000", team_id="t", metadata=key_meta or {})
    team = TeamRecord(team_id="t", metadata=team_meta or {}, organization_id=org.organization_id if org else None)
    return Principal(caller=Caller(key_hash="t0", team_id="t"), role="internal_user", key=key, team=team, organization=org)


def test_body_tags_come_from_metadata_tags_and_top_level_tags() -> None:
    assert body_tags(b'{"model": "m", "metadata": {"tags": ["a", " b "]}, "tags": "c"}') == ["a", "b", "c"]
    assert body_tags(b'  {"metadata": {"user_id": "x"}}') == []
    assert body_tags(b"--boundary\r\n") == []  # a multipart upload has no JSON tags
    assert body_tags(b'{"metadata": "not a map"}') == []
    with pytest.raises(GatewayError) as bad:
        body_tags(b'{"metadata": {"tags": [1]}}')
    assert (bad.value.status, bad.value.param) == (400, "metadata.tags")


def test_header_tags_are_comma_separated_and_trimmed() -> None:
    headers = [(b"X-LiteLLM-Tags", b"a, b ,,c"), (b"content-type", b"application/json")]
    assert header_tags(headers) == ["a", "b", "c"]


def test_tags_merge_the_request_key_and_team_tags_once_each() -> None:
    p = principal({"tags": ["k", "a"]}, {"tags": "t"})
    out = tagged(p, [(b"x-litellm-tags", b"h")], b'{"metadata": {"tags": ["a"]}}')
    assert out.caller.tags == ["a", "h", "k", "t"]
    assert tagged(principal(), [], b"{}") == principal()  # no tags: the principal as it was


def test_a_required_tag_must_come_from_the_request() -> None:
    cases = (
        (principal({"enforced_params": ["metadata.tags"], "tags": ["k"]}), "metadata.tags"),
        (principal(team_meta={"enforced_params": ["tags"]}), "tags"),
    )
    for p, param in cases:
        with pytest.raises(GatewayError) as refused:
            tagged(p, [], b'{"model": "m", "metadata": {"tags": []}}')
        assert (refused.value.status, refused.value.param) == (400, param)
        assert tagged(p, [(b"x-litellm-tags", b"x")], b"{}").caller.tags[0] == "x"
        assert tagged(p, [], b'{"tags": "y"}').caller.tags[0] == "y"


def test_enforced_params_name_any_body_parameter() -> None:
    p = principal({"enforced_params": ["user", "metadata.generation_name"]})
    for body, missing in (
        (b'{"model": "m"}', "user"),
        (b'{"user": "u1", "metadata": {}}', "metadata.generation_name"),
        (b'{"user": "", "metadata": {"generation_name": "g"}}', "user"),
    ):
        with pytest.raises(GatewayError) as refused:
            tagged(p, [], body)
        assert refused.value.param == missing, body
    assert tagged(p, [], b'{"user": "u1", "metadata": {"generation_name": "g"}}') == p


def test_enforced_params_given_at_the_top_level_are_kept_in_metadata() -> None:
    assert fold_enforced_params({"models": []}, {"a": 1}) == {"models": []}
    assert fold_enforced_params({"enforced_params": ["user"]}, {"a": 1}) == {"metadata": {"a": 1, "enforced_params": ["user"]}}
    given = {"enforced_params": ["user"], "metadata": {"b": 2}}
    assert fold_enforced_params(given, {"a": 1}) == {"metadata": {"b": 2, "enforced_params": ["user"]}}
    assert fold_enforced_params({"enforced_params": None}, {"enforced_params": ["user"]}) == {"metadata": {}}
    with pytest.raises(GatewayError) as bad:
        fold_enforced_params({"enforced_params": "user"}, {})
    assert bad.value.param == "enforced_params"


def test_too_many_tags_are_refused() -> None:
    many = ",".join(f"t{i}" for i in range(MAX_TAGS + 1)).encode()
    with pytest.raises(GatewayError):
        tagged(principal(), [(b"x-litellm-tags", many)], b"{}")


def test_a_team_in_an_organization_counts_against_the_organization_ledger() -> None:
    org = OrganizationRecord(organization_id="acme", max_budget=5.0, created_at=1.0)
    budgets = covering(principal(org=org), "gpt-4", 2.0)
    assert [b.key for b in budgets] == [
        ledger_key(LedgerKind.KEY, "t0"),
        ledger_key(LedgerKind.TEAM, "t"),
        ledger_key(LedgerKind.ORG, "acme"),
    ]
    assert budgets[-1].ref.max_budget == 5.0 and budgets[-1].label == "organization acme"
