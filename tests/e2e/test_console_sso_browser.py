"""Single sign-on to the console in a real headless Chromium (tests/browser.py) against a real
OpenID Provider (`oidc-provider` from npm) and the gateway as separate processes: a person signs in
through the provider's own login form and gets the role their claims map to; a person outside the
allowed e-mail domains is refused; a session an admin ended is sent back to sign in; signing out
goes through the provider's logout. Screenshots go with the console's (the folder the run prints)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.browser import chromium
from tests.e2e.console_pages import css, one
from tests.e2e.sso_stack import ADMIN, PASSWORDS, start_sso_stack
from tests.waiting import eventually_sync

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def sso(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory):
    stack, provider = start_sso_stack(tmp_path_factory.mktemp("sso-browser"), nats_server.url, "e2essobrowser", upstream)
    yield stack, provider
    stack.stop()
    provider.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    folder = tmp_path_factory.getbasetemp() / "console-screenshots"
    folder.mkdir(exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"console screenshots: {folder}")
    return folder


@pytest.fixture
def browser(tmp_path: Path):
    with chromium(tmp_path / "profile") as driver:  # a new browser each test: no cookie carried over
        yield driver


def sso_sign_in(driver, base: str, login: str, shots: Path | None = None) -> None:
    """From the console's login page, through the provider's login form."""
    driver.get(f"{base}/ui/keys")
    eventually_sync(lambda: "/ui/login" in driver.current_url, "a signed-out visit to go to the login page")
    one(driver, "#sso-sign-in", "the single sign-on button").click()
    one(driver, "#username", "the provider's login form").send_keys(login)
    if shots is not None:
        driver.save_screenshot(str(shots / "sso-provider-login.png"))
    one(driver, "#password").send_keys(PASSWORDS[login])
    one(driver, "#sign-in").click()


def test_a_person_signs_in_through_the_provider_and_gets_their_role(sso, browser, shots: Path):
    stack, _ = sso
    base = stack.base_url
    sso_sign_in(browser, base, "alice", shots)
    eventually_sync(lambda: browser.current_url == f"{base}/ui/keys", "the page asked for, signed in")
    assert one(browser, "#who").text == "alice@corp.example · proxy_admin"
    assert css(browser, "#nav-users"), "an admin sees the admin pages"
    browser.save_screenshot(str(shots / "sso-signed-in.png"))

    # Signing out ends the session here and at the provider, then comes back to the login page.
    one(browser, "#logout").click()
    one(browser, "#sign-out", "the provider's sign-out confirmation").click()
    eventually_sync(lambda: browser.current_url.startswith(f"{base}/ui/login"), "back on the console's login page")
    browser.get(f"{base}/ui/keys")
    eventually_sync(lambda: "/ui/login" in browser.current_url, "signed out")


def test_a_team_lead_gets_the_team_admin_role(sso, browser):
    stack, _ = sso
    sso_sign_in(browser, stack.base_url, "tara")
    assert one(browser, "#who").text == "tara@corp.example · team_admin"
    assert not css(browser, "#nav-users"), "a team admin does not see the admins' pages"


def test_a_person_outside_the_allowed_domains_is_refused(sso, browser, shots: Path):
    stack, _ = sso
    sso_sign_in(browser, stack.base_url, "mallory")
    assert one(browser, "#sso-title").text == "Not allowed to sign in"
    assert "not in a domain allowed" in one(browser, "#sso-message").text
    browser.save_screenshot(str(shots / "sso-refused.png"))
    browser.get(f"{stack.base_url}/ui/keys")
    eventually_sync(lambda: "/ui/login" in browser.current_url, "no session was made")


def test_an_ended_session_is_sent_back_to_sign_in(sso, browser):
    stack, _ = sso
    base = stack.base_url
    sso_sign_in(browser, base, "alice")
    eventually_sync(lambda: browser.current_url == f"{base}/ui/keys", "signed in")
    listed = httpx.get(f"{base}/ui/sessions/list", headers=ADMIN, timeout=10).json()["sessions"]
    for session in (s["session"] for s in listed if s["user_id"] == "alice"):
        assert httpx.post(f"{base}/ui/sessions/end", headers=ADMIN, json={"session": session}, timeout=10).status_code == 200
    browser.get(f"{base}/ui/teams")
    eventually_sync(lambda: "/ui/login" in browser.current_url, "the ended session sent back to sign in")
