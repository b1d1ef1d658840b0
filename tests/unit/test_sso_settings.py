"""`general_settings.ui_sso` (gateway/console/sso_config.py): what the config file says, checked
once; the role and teams a user's claims map to; the e-mail domains allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.console.sso_config import sso_settings
from llmgw.config import ConfigError

pytestmark = pytest.mark.unit

BASE = {"issuer": "https://login.corp.example/", "client_id": "console", "client_secret": "os.environ/SSO_SECRET"}
ENV = {"SSO_SECRET": "s3cret-value"}


def parse(**raw):
    return sso_settings({"ui_sso": {**BASE, **raw}}, ENV)


def test_absent_means_no_single_sign_on():
    assert sso_settings({}, {}) is None


def test_the_secret_comes_from_the_environment_and_never_shows():
    s = parse()
    assert s is not None and s.client_secret is not None
    assert s.client_secret.reveal() == "s3cret-value" and "s3cret" not in repr(s)
    assert s.issuer == "https://login.corp.example/"  # kept as written: `iss` is compared exactly
    assert s.scopes == ("openid", "email", "profile")


def test_openid_is_always_asked_for():
    s = parse(scopes=["email", "groups"])
    assert s is not None and s.scopes == ("openid", "email", "groups")


def test_roles_map_to_the_highest_value_the_claim_holds():
    s = parse(role_claim="groups", role_mapping={"admins": "proxy_admin", "leads": "team_admin"})
    assert s is not None
    assert s.role_for({"groups": ["leads", "admins"]}) == "proxy_admin"
    assert s.role_for({"groups": "leads other"}) == "team_admin"
    assert s.role_for({"groups": ["other"]}) == "internal_user"
    assert s.role_for({}) == "internal_user"


def test_teams_come_from_their_claim_once_each():
    s = parse(teams_claim="teams")
    assert s is not None and s.teams_for({"teams": ["a", "b", "a", 3]}) == ["a", "b"]
    unset = parse()
    assert unset is not None and unset.teams_for({"teams": ["a"]}) is None


def test_allowed_domains_are_matched_whole_and_without_case():
    s = parse(allowed_email_domains=["@Corp.example"])
    assert s is not None
    assert s.email_allowed("bob@corp.example")
    assert not s.email_allowed("bob@evilcorp.example")
    assert not s.email_allowed("bob@corp.example.evil")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"issuer": None}, "issuer: required"),
        ({"issuer": "login.corp.example"}, "http"),
        ({"client_secret": "os.environ/NOT_SET"}, "NOT_SET is not set"),
        ({"role_mapping": {"admins": "superuser"}}, "role_mapping.admins"),
        ({"default_role": "root"}, "default_role"),
        ({"allowed_domains": ["x"]}, "unknown setting"),
        ({"scopes": 5}, "scopes"),
    ],
)
def test_mistakes_are_named(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse(**raw)


def test_the_readme_example_is_a_valid_setting():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Single sign-on (OpenID Connect)", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    general = yaml.safe_load(example)["general_settings"]
    s = sso_settings(general, {"GENERIC_CLIENT_ID": "console", "GENERIC_CLIENT_SECRET": "secret-of-the-client"})
    assert s is not None and s.client_id == "console"
    assert s.role_for({"groups": ["llmgw-leads"]}) == "team_admin"
    assert s.allowed_email_domains == ("example.com",)
