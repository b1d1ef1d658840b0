"""Single sign-on to the console (OpenID Connect) against a real OpenID Provider (`oidc-provider`
from npm, tests/sso_provider.py), the gateway's edge, worker and metering as separate processes.
At the HTTP level: each sign-in goes through the provider's own login form (httpx following the
redirects and posting the form), then the console's session is used as a browser would.

- An admin-group account in the allowed domain gets a proxy_admin session, a user made on its
  first sign-in (no key: a session is not an API key), and the team its teams claim names.
- A team lead gets a team_admin session and is an admin of the (existing) team it claims.
- An account outside the allowed domains is refused with a 403 page: no session, no user.
- A session an admin ended sends the browser back to the login page; signing out ends the
  session and goes through the provider's RP-initiated logout back to the login page.
- A sign-in whose state does not match, or that was never started here, is refused.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.e2e.sso_stack import ADMIN, CONSOLE_COOKIE, PASSWORDS, start_sso_stack
from tests.e2e.stack import Stack
from tests.sso_provider import CLIENT_ID, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def sso(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    stack, provider = start_sso_stack(tmp_path_factory.mktemp("sso"), nats_server.url, "e2esso", upstream)
    yield stack, provider
    stack.stop()
    provider.stop()


def browser() -> httpx.Client:
    return httpx.Client(timeout=15)


def signed_in(stack: Stack, http: httpx.Client, login: str) -> httpx.Response:
    return sign_in(http, f"{stack.base_url}/ui/sso/login?next=/ui/keys", login, PASSWORDS[login])


def sessions_of(stack: Stack, user_id: str) -> list[dict]:
    listed = httpx.get(f"{stack.base_url}/ui/sessions/list", headers=ADMIN, timeout=10)
    assert listed.status_code == 200, listed.text
    return [s for s in listed.json()["sessions"] if s["user_id"] == user_id]


def user_info(stack: Stack, user_id: str) -> httpx.Response:
    return httpx.get(f"{stack.base_url}/user/info", params={"user_id": user_id}, headers=ADMIN, timeout=10)


def team(stack: Stack, team_id: str) -> dict:
    answer = httpx.get(f"{stack.base_url}/team/info", params={"team_id": team_id}, headers=ADMIN, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["team_info"]


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf[-_]token"\s+content="([^"]+)"', page) or re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"', page
    )
    assert found, "no CSRF token on the console page"
    return found.group(1)


def test_an_admin_signs_in_and_gets_the_role_and_team_of_their_claims(sso):
    stack, _ = sso
    with browser() as http:
        page = signed_in(stack, http, "alice")
        assert page.status_code == 200 and str(page.url) == f"{stack.base_url}/ui/keys", (page.url, page.text[:300])
        assert http.cookies.get(CONSOLE_COOKIE)
        # The session authorizes the admin API (with its CSRF token), as a proxy admin.
        listed = http.get(f"{stack.base_url}/user/list", headers={"x-llmgw-csrf": csrf_of(page.text)})
        assert listed.status_code == 200, listed.text
    (session,) = sessions_of(stack, "alice")
    assert session["role"] == "proxy_admin" and session["via"] == "oidc" and session["teams"] == ["team-alpha"]
    assert session["email"] == "alice@corp.example"
    info = user_info(stack, "alice").json()
    assert info["user_info"]["user_role"] == "proxy_admin"
    assert info["user_info"]["user_email"] == "alice@corp.example"
    assert info["keys"] == []  # made by the same code as /user/new, without a key
    members = {m["user_id"]: m["role"] for m in team(stack, "team-alpha")["members_with_roles"]}
    assert members["alice"] == "user"


def test_a_team_lead_becomes_an_admin_of_their_team_only(sso):
    stack, _ = sso
    with browser() as http:
        page = signed_in(stack, http, "tara")
        assert page.status_code == 200, page.text[:300]
    (session,) = sessions_of(stack, "tara")
    assert session["role"] == "team_admin" and session["teams"] == ["team-alpha"]  # team-nowhere does not exist
    assert user_info(stack, "tara").json()["user_info"]["user_role"] == "internal_user"
    members = {m["user_id"]: m["role"] for m in team(stack, "team-alpha")["members_with_roles"]}
    assert members["tara"] == "admin"


def test_a_user_an_admin_made_before_is_found_by_their_address(sso):
    stack, _ = sso
    made = httpx.post(
        f"{stack.base_url}/user/new",
        headers=ADMIN,
        json={"user_id": "ellen-from-before", "user_email": "ellen@corp.example", "auto_create_key": False},
        timeout=10,
    )
    assert made.status_code == 200 and made.json()["key"] is None, made.text
    with browser() as http:
        assert signed_in(stack, http, "ellen").status_code == 200
    (session,) = sessions_of(stack, "ellen-from-before")
    assert session["role"] == "internal_user" and session["email"] == "ellen@corp.example"
    assert user_info(stack, "ellen").status_code == 404  # no second user


def test_an_account_outside_the_allowed_domains_is_refused(sso):
    stack, _ = sso
    with browser() as http:
        page = signed_in(stack, http, "mallory")
        assert page.status_code == 403
        assert "not in a domain allowed" in page.text
        assert not http.cookies.get(CONSOLE_COOKIE)
    assert sessions_of(stack, "mallory") == []
    assert user_info(stack, "mallory").status_code == 404


def test_an_ended_session_is_sent_back_to_log_in(sso):
    stack, _ = sso
    with browser() as http:
        assert signed_in(stack, http, "alice").status_code == 200
        sessions = {s["session"] for s in sessions_of(stack, "alice")}
        for session in sessions:
            ended = httpx.post(f"{stack.base_url}/ui/sessions/end", headers=ADMIN, json={"session": session}, timeout=10)
            assert ended.status_code == 200, ended.text
        again = http.get(f"{stack.base_url}/ui/keys", follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"].startswith("/ui/login")


def test_signing_out_ends_the_session_and_the_providers(sso):
    stack, provider = sso
    with browser() as http:
        page = signed_in(stack, http, "alice")
        assert page.status_code == 200
        before = {s["session"] for s in sessions_of(stack, "alice")}
        out = http.post(f"{stack.base_url}/ui/logout", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 200, out.text
        assert not http.cookies.get(CONSOLE_COOKIE)
        # Sent on to the provider's logout by a refresh (a redirect would break the form's CSP).
        refresh = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', out.text)
        assert refresh, out.text
        target = unescape(refresh.group(1))
        assert target.startswith(f"{provider.issuer}/session/end?")
        query = parse_qs(urlsplit(target).query)
        assert query["client_id"] == [CLIENT_ID]
        assert query["post_logout_redirect_uri"] == [f"{stack.base_url}/ui/login"]
        assert {s["session"] for s in sessions_of(stack, "alice")} < before
        # The provider asks to confirm; confirmed, it sends the browser back to the login page.
        confirm = http.get(target)
        form = re.search(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', confirm.text, re.S)
        assert form, confirm.text[:500]
        fields = dict(re.findall(r'name="([^"]+)"\s+value="([^"]*)"', form.group(2)))
        done = http.post(urljoin(str(confirm.url), form.group(1)), data={**fields, "logout": "yes"})
        assert done.is_redirect and done.headers["location"] == f"{stack.base_url}/ui/login"
        # Signed out at the provider too: the next sign-in asks for the password again.
        again = http.get(f"{stack.base_url}/ui/sso/login", follow_redirects=True)
        assert 'id="login"' in again.text


def test_a_sign_in_that_is_not_ours_is_refused(sso):
    stack, _ = sso

    def started(http: httpx.Client) -> str:
        """The state of a new sign-in (its sealed cookie kept by `http`)."""
        start = http.get(f"{stack.base_url}/ui/sso/login")
        return parse_qs(urlsplit(start.headers["location"]).query)["state"][0]

    with browser() as http:
        start = http.get(f"{stack.base_url}/ui/sso/login")
        assert start.status_code == 303 and start.headers["location"].startswith("http://127.0.0.1")
        assert "code_challenge_method=S256" in start.headers["location"]
        forged = http.get(f"{stack.base_url}/ui/sso/callback", params={"code": "abc", "state": "not-the-state"})
        assert forged.status_code == 400 and "state does not match" in forged.text
        # A refused answer ends the sign-in: each case below starts one of its own.
        retried = http.get(f"{stack.base_url}/ui/sso/callback", params={"code": "abc", "state": "not-the-state"})
        assert retried.status_code == 400 and "sign in again" in retried.text
        mixed_up = http.get(
            f"{stack.base_url}/ui/sso/callback", params={"code": "abc", "state": started(http), "iss": "https://evil.example"}
        )
        assert mixed_up.status_code == 400 and "another sign-in provider" in mixed_up.text
        denied = http.get(f"{stack.base_url}/ui/sso/callback", params={"error": "access_denied", "state": started(http)})
        assert denied.status_code == 401 and "did not sign you in (access_denied)" in denied.text
        assert not http.cookies.get(CONSOLE_COOKIE)
    with browser() as http:  # no sign-in started in this browser
        stray = http.get(f"{stack.base_url}/ui/sso/callback", params={"code": "abc", "state": "x"})
        assert stray.status_code == 400 and "sign in again" in stray.text


def test_a_session_is_not_an_api_key(sso):
    stack, _ = sso
    with browser() as http:
        page = signed_in(stack, http, "alice")
        answer = http.post(
            f"{stack.base_url}/v1/chat/completions",
            json={"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-llmgw-csrf": csrf_of(page.text)},
        )
        assert answer.status_code == 401
        assert answer.json()["error"]["type"]


def test_the_teams_claim_owns_team_membership(sso):
    """A team the claim no longer names is left at the next sign-in; one it names is joined."""
    stack, _ = sso
    made = httpx.post(f"{stack.base_url}/team/new", headers=ADMIN, json={"team_id": "team-beta"}, timeout=10)
    assert made.status_code == 200, made.text
    with browser() as http:
        assert signed_in(stack, http, "tara").status_code == 200
    added = httpx.post(
        f"{stack.base_url}/team/member_add",
        headers=ADMIN,
        json={"team_id": "team-beta", "member": {"user_id": "tara", "role": "user"}},
        timeout=10,
    )
    assert added.status_code == 200, added.text
    assert "team-beta" in user_info(stack, "tara").json()["user_info"]["teams"]
    with browser() as http:
        assert signed_in(stack, http, "tara").status_code == 200
    assert user_info(stack, "tara").json()["user_info"]["teams"] == ["team-alpha"]
    assert "tara" not in {m["user_id"] for m in team(stack, "team-beta")["members_with_roles"]}
    assert {m["user_id"]: m["role"] for m in team(stack, "team-alpha")["members_with_roles"]}["tara"] == "admin"
