"""The admin console (/ui) in a real headless Chromium against the whole gateway as separate
processes, in front of the fake OpenAI upstream: sign in with the master key, create a team, a
user and a key (its plaintext read once), send requests with the key (openai SDK), find them in the
usage log and in the overview's chart (its data points), block the key in the page and see the next
API call refused; and the session rules: a session is no API key, a request without the session's
CSRF token is refused, an ended or expired session is sent back to sign in.

Each page's screenshot is saved under the pytest basetemp, in the folder the run prints."""

from __future__ import annotations

import functools
import threading
from contextlib import closing
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest

from gateway.console.sessions import COOKIE
from tests.browser import chromium
from tests.e2e.console_pages import (
    admin_headers,
    css,
    fill,
    login_session,
    one,
    open_page,
    ready,
    sign_in,
    signed_in_as,
    with_cookie,
)
from tests.procs import component, free_port
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    folder = tmp_path_factory.getbasetemp() / "console-screenshots"
    folder.mkdir(exist_ok=True)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():  # (printed past pytest's capture, where the run's output is)
            print(f"\nconsole screenshots: {folder}", flush=True)
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def test_console_admin_journey(stack, browser, shots: Path) -> None:
    base = stack.base_url
    browser.get(f"{base}/ui/overview")
    eventually_sync(lambda: "/ui/login" in browser.current_url, "a signed-out visit to go to the login page")
    browser.save_screenshot(str(shots / "login.png"))
    sign_in(browser, base, "sk-not-the-master-key")
    assert "not the master key" in one(browser, "#login-error").text
    sign_in(browser, base)
    ready(browser, "overview")

    # A team, a user on it (with the key /user/new makes), and a key of the team.
    open_page(browser, base, "teams")
    fill(browser, "team-create", {"team_alias": "Platform", "team_id": "team-plat", "max_budget": "50"})
    one(browser, 'tr[data-team="team-plat"]', "the new team in the list")
    browser.save_screenshot(str(shots / "teams.png"))

    open_page(browser, base, "users")
    fill(browser, "user-create", {"user_id": "alice", "user_email": "alice@example.com", "team_id": "team-plat"})
    one(browser, 'tr[data-user="alice"]', "the new user in the list")
    assert one(browser, "#new-key-value").text.startswith("sk-")
    browser.save_screenshot(str(shots / "users.png"))

    open_page(browser, base, "keys")
    fill(browser, "key-create", {"key_alias": "ui-key", "team_id": "team-plat", "user_id": "alice", "max_budget": "5"})
    key = one(browser, "#new-key-value", "the new key, shown once").text
    assert key.startswith("sk-")
    assert css(browser, "#copy-key")
    one(browser, 'tr[data-alias="ui-key"]', "the new key in the list")
    browser.save_screenshot(str(shots / "keys.png"))
    open_page(browser, base, "keys")
    assert not css(browser, "#new-key-value")  # shown once only
    assert key not in browser.page_source
    fill(browser, "key-filter", {"q": "ui-k"})  # search
    eventually_sync(lambda: len(css(browser, "#keys-table tr[data-alias]")) == 1, "the search to leave one key")
    assert css(browser, 'tr[data-alias="ui-key"]')

    # A user's keys, from the users page.
    open_page(browser, base, "users")
    one(browser, 'tr[data-user="alice"] a.keys-link').click()
    ready(browser, "keys")
    assert one(browser, "#key-filter-user_id").get_attribute("value") == "alice"
    assert sorted(r.get_attribute("data-alias") for r in css(browser, "#keys-table tr[data-alias]")) == ["", "ui-key"]

    # Requests with the key, through the official SDK.
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    request_ids = []
    for i in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4", messages=[{"role": "user", "content": f"hello {i}"}]
        )
        raw.parse()
        request_ids.append(raw.headers["x-request-id"])
    rows = stack.usage_rows(request_ids)
    assert len(rows) == 3

    # The usage log lists them; one request's detail has its tokens and cost.
    def usage_listed() -> bool:
        open_page(browser, base, "usage")
        shown = {e.get_attribute("data-request") for e in css(browser, "#usage-table tr[data-request]")}
        return set(request_ids) <= shown

    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})  # a viewer in Tokyo
    eventually_sync(usage_listed, "the requests in the usage log")
    assert "times in Asia/Tokyo" in one(browser, "#content").text
    logged = httpx.get(f"{base}/spend/logs", params={"request_id": request_ids[0]}, headers=admin_headers(), timeout=10).json()
    started = datetime.fromisoformat(logged[0]["startTime"].replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Tokyo"))
    shown_time = one(browser, f'tr[data-request="{request_ids[0]}"] td').text
    assert f"{started.hour % 12 or 12}:{started.minute:02d}:" in shown_time, shown_time  # the viewer's hour, not UTC's
    fill(browser, "usage-filter", {"model": "gpt-3.5-turbo"})
    eventually_sync(lambda: "No requests match." in one(browser, "#usage-table").text, "the model filter to match nothing")
    fill(browser, "usage-filter", {"model": "gpt-4", "status": "success"})
    eventually_sync(lambda: len(css(browser, "#usage-table tr[data-request]")) == 3, "the filters to match the three")
    browser.save_screenshot(str(shots / "usage.png"))
    one(browser, f'tr[data-request="{request_ids[0]}"] a').click()
    ready(browser, "request")
    detail = one(browser, "#request-detail").text
    assert request_ids[0] in detail and "ui-key" in detail and "gpt-4" in detail
    prompt_tokens = rows[request_ids[0]]["prompt_tokens"]
    assert f"{prompt_tokens} tokens" in detail
    browser.save_screenshot(str(shots / "request.png"))

    # The overview's chart holds them: three requests in the current hour, their spend beside.
    open_page(browser, base, "overview")
    points = css(browser, "#chart-requests circle.point")
    assert len(points) == 24
    ys = [float(p.get_attribute("data-y")) for p in points]
    assert sum(ys) == 3 and ys[-1] == 3, ys
    spent = sum(float(r["cost"]) for r in rows.values())
    assert spent > 0
    spend_ys = [float(p.get_attribute("data-y")) for p in css(browser, "#chart-spend circle.point")]
    assert spend_ys[-1] == pytest.approx(spent, rel=1e-6)
    assert "3 requests" in one(browser, "#tile-requests").text
    top_keys = one(browser, "#top-keys").text
    assert "ui-key" in top_keys
    browser.save_screenshot(str(shots / "overview.png"))

    # Blocked in the page: the next API call with the key is refused.
    open_page(browser, base, "keys")
    one(browser, 'tr[data-alias="ui-key"] button.block').click()
    eventually_sync(lambda: "blocked" in one(browser, 'tr[data-alias="ui-key"]').text, "the key shown blocked")
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "still there?"}])
    assert refused.value.status_code == 401 and "blocked" in str(refused.value)

    # A provider credential rotated in the page: the deployment that had a stale one answers.
    open_page(browser, base, "models")
    assert stack.upstream.api_key not in browser.page_source  # credentials are shown masked
    browser.save_screenshot(str(shots / "models.png"))
    gpt4 = 'tr[data-model="gpt-4"]'
    assert one(browser, f"{gpt4} td.health").text == "healthy"
    assert one(browser, f"{gpt4} td.requests").text == "3 req" and one(browser, f"{gpt4} td.errors").text == "0.0 %"
    assert one(browser, f"{gpt4} td.latency").text.endswith(" ms")
    admin_client = stack.client()
    with pytest.raises(openai.APIStatusError):
        admin_client.chat.completions.create(model="rotating", messages=[{"role": "user", "content": "hi"}])
    one(browser, 'tr[data-model="rotating"] button.rotate').click()
    fill(browser, "rotate-form", {"api_key": stack.upstream.api_key})
    assert "rotated" in one(browser, "#notice").text
    eventually_sync(
        lambda: admin_client.chat.completions.create(model="rotating", messages=[{"role": "user", "content": "hi"}]).choices,
        "the rotated credential to be used",
        retrying=(openai.APIStatusError,),
    )
    open_page(browser, base, "models")
    assert stack.upstream.api_key not in browser.page_source
    shown = one(browser, 'tr[data-model="rotating"] td.credential').text
    assert "rotated" in shown and stack.upstream.api_key[-4:] in shown, shown  # the new one, masked

    # Budgets: the key's and the team's burn against their budgets; a budget object made in the page.
    open_page(browser, base, "budgets")
    bar = one(browser, 'tr[data-holder="key:ui-key"] svg.bar')
    assert float(bar.get_attribute("data-budget")) == 5.0
    assert float(bar.get_attribute("data-spend")) == pytest.approx(spent, rel=1e-6)
    assert float(one(browser, 'tr[data-holder="team:Platform"] svg.bar').get_attribute("data-budget")) == 50.0
    fill(browser, "budget-create", {"budget_id": "bo-console", "max_budget": "12.5", "budget_duration": "30d"})
    one(browser, 'tr[data-budget="bo-console"]', "the new budget object")
    browser.save_screenshot(str(shots / "budgets.png"))

    # Policies: the gateway's system prompt set in the page, as the API reads it; then removed.
    open_page(browser, base, "policies")
    fill(browser, "policy-gateway", {"system_prompt": "Answer briefly."})
    policy = lambda: httpx.get(f"{base}/policy/system_prompt", headers=admin_headers(), timeout=10).json()["system_prompt"]  # noqa: E731
    eventually_sync(lambda: policy() == "Answer briefly.", "the system prompt saved")
    ready(browser, "policies")
    browser.save_screenshot(str(shots / "policies.png"))
    fill(browser, "policy-gateway", {"system_prompt": ""})
    eventually_sync(lambda: policy() is None, "the system prompt removed")

    open_page(browser, base, "sessions")
    assert css(browser, "#sessions-table tr[data-session]")
    browser.save_screenshot(str(shots / "sessions.png"))

    one(browser, "#logout").click()
    eventually_sync(lambda: browser.current_url.endswith("/ui/login"), "sign-out to land on the login page")
    browser.get(f"{base}/ui/keys")
    eventually_sync(lambda: "/ui/login" in browser.current_url, "a signed-out visit to go to the login page")


def test_session_needs_its_csrf_token_and_is_no_api_key(stack) -> None:
    client, csrf = login_session(stack.base_url)
    with closing(client):
        body = {"key_alias": "forged"}
        # A forged cross-site post: the browser sends the cookie, never the token.
        forged = client.post("/key/generate", json=body, headers={"origin": "https://evil.example"})
        assert forged.status_code == 403, forged.text
        assert forged.json()["error"]["code"] == "permission_denied"
        wrong = client.post("/key/generate", json=body, headers={"x-llmgw-csrf": csrf[:-2] + "xx"})
        assert wrong.status_code == 403
        form = client.post("/key/block", data={"key": "x"}, headers={"content-type": "application/x-www-form-urlencoded"})
        assert form.status_code == 403
        logout = client.post("/ui/logout", data={"csrf_token": "nope"})
        assert logout.status_code == 403
        # With its token the session is the master key's admin.
        made = client.post("/key/generate", json={"key_alias": "made-in-console"}, headers={"x-llmgw-csrf": csrf})
        assert made.status_code == 200, made.text
        # ... but never a key for the model routes, with the token or without.
        for headers in ({}, {"x-llmgw-csrf": csrf}):
            chat = client.post(
                "/v1/chat/completions", json={"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, headers=headers
            )
            assert chat.status_code == 401, chat.text
        assert client.get("/v1/models").status_code == 401
        # Nothing on the pages runs inline script: the policy says so.
        page = client.get("/ui/overview")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"


def test_ended_session_goes_back_to_login(stack, browser) -> None:
    base = stack.base_url
    browser.delete_all_cookies()
    sign_in(browser, base)
    ready(browser, "overview")
    client, csrf = login_session(base)
    with closing(client):
        listed = httpx.get(f"{base}/ui/sessions/list", headers=admin_headers(), timeout=10).json()["sessions"]
        assert len(listed) >= 2 and all(s["via"] == "master_key" and s["role"] == "proxy_admin" for s in listed)
        # An admin ends every session but the HTTP client's (the browser's among them), from the console API.
        mine = client.get("/ui/sessions/list", headers={"x-llmgw-csrf": csrf}).json()["sessions"]
        browser_sessions = [s["session"] for s in mine][1:]  # the newest first: the client's own is first
        for key in browser_sessions:
            ended = client.post("/ui/sessions/end", json={"session": key}, headers={"x-llmgw-csrf": csrf})
            assert ended.status_code == 200, ended.text
        assert client.post("/ui/sessions/end", json={"session": "nope"}, headers={"x-llmgw-csrf": csrf}).status_code == 404
    browser.get(f"{base}/ui/teams")
    eventually_sync(lambda: "/ui/login" in browser.current_url, "an ended session to be sent to sign in")
    # A page still open when its session ends is sent there by its next call.
    client, csrf = login_session(base)
    with closing(client):
        key = client.get("/ui/sessions/list", headers={"x-llmgw-csrf": csrf}).json()["sessions"][0]["session"]
        httpx.post(f"{base}/ui/sessions/end", json={"session": key}, headers=admin_headers(), timeout=10).raise_for_status()
        answer = client.get("/key/list", headers={"x-llmgw-csrf": csrf})
        assert answer.status_code == 401 and "sign in again" in answer.json()["error"]["message"]
        assert client.get("/ui/keys").headers["location"].startswith("/ui/login")


def test_expired_session_goes_back_to_login(stack, browser, tmp_path: Path) -> None:
    """An edge whose sessions last two seconds (a bus prefix of its own: its own sessions bucket)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**stack.env, "LLMGW_BUS_PREFIX": "e2econsoleexp", "LLMGW_PORT": str(port), "LLMGW_CONSOLE_SESSION_MAX_AGE": "2"}
    edge = component("edge-short-sessions", "gateway", env, tmp_path).start()
    try:
        eventually_sync(lambda: httpx.get(f"{base}/ui/login", timeout=1).status_code == 200, "the edge to serve /ui", timeout=45)
        browser.delete_all_cookies()
        sign_in(browser, base)
        one(browser, 'main[data-page="overview"]')
        eventually_sync(
            lambda: browser.get(f"{base}/ui/keys") or "/ui/login" in browser.current_url,
            "an expired session to be sent to sign in",
            timeout=15,
            interval=0.5,
        )
    finally:
        edge.stop()


def test_team_admins_manage_their_team_and_users_see_their_own(stack, browser, shots: Path) -> None:
    base = stack.base_url
    post = lambda path, body: httpx.post(f"{base}{path}", json=body, headers=admin_headers(), timeout=10)  # noqa: E731
    assert post("/team/new", {"team_id": "team-roles", "team_alias": "Roles"}).status_code == 200
    for user in ("tina", "uli"):
        made = post("/user/new", {"user_id": user, "team_id": "team-roles", "key_alias": f"{user}-key"})
        assert made.status_code == 200, made.text
    added = post("/team/member_add", {"team_id": "team-roles", "member": {"user_id": "tina", "role": "admin"}})
    assert added.status_code == 200, added.text
    other = post("/key/generate", {"key_alias": "someone-elses"})
    assert other.status_code == 200

    # An ordinary user sees their own keys and spend, not the admin's pages.
    uli = signed_in_as(stack, user_id="uli", email="uli@example.com", role="internal_user", teams=["team-roles"], via="oidc")
    with_cookie(browser, base, uli)
    open_page(browser, base, "keys")
    aliases = [r.get_attribute("data-alias") for r in css(browser, "#keys-table tr[data-alias]")]
    assert aliases == ["uli-key"], aliases
    assert not css(browser, "#nav-usage") and not css(browser, "#nav-users") and not css(browser, "#key-create")
    open_page(browser, base, "overview")
    assert "1 keys" in one(browser, "#tile-my-keys").text
    open_page(browser, base, "teams")
    assert css(browser, 'tr[data-team="team-roles"]') and not css(browser, 'tr[data-team="team-roles"] button.add-member')
    browser.get(f"{base}/ui/usage")  # (a page the navigation does not offer: its calls are refused)
    one(browser, 'main[data-ready="error"]')
    csrf = one(browser, 'meta[name="csrf-token"]').get_attribute("content")
    with httpx.Client(base_url=base, cookies={COOKIE: uli}, headers={"x-llmgw-csrf": csrf}, timeout=10) as client:
        # The same role checks as for the user's key: the admin reads and writes are 403.
        assert client.get("/spend/logs").status_code == 403
        assert client.post("/key/block", json={"key": other.json()["key"]}).status_code == 403
        assert client.get("/user/info").json()["user_id"] == "uli"

    # Self-service: the user makes a key of their own in the page, in their team, shown once.
    open_page(browser, base, "keys")
    fill(browser, "own-key-create", {"key_alias": "uli-self", "team_id": "team-roles", "max_budget": "2"})
    own = one(browser, "#new-key-value", "the user's new key, shown once").text
    assert own.startswith("sk-")
    eventually_sync(lambda: css(browser, 'tr[data-alias="uli-self"]'), "the user's new key in their list")
    made_info = httpx.get(f"{base}/key/info", params={"key": own}, headers=admin_headers(), timeout=10).json()["info"]
    assert (made_info["user_id"], made_info["team_id"], made_info["max_budget"]) == ("uli", "team-roles", 2)

    # A team admin adds a member to their team in the page.
    tina = signed_in_as(stack, user_id="tina", email="tina@example.com", role="team_admin", teams=["team-roles"], via="oidc")
    with_cookie(browser, base, tina)
    open_page(browser, base, "teams")
    one(browser, 'tr[data-team="team-roles"] button.add-member').click()
    fill(browser, "member-add", {"user_id": "uma", "role": "user"})
    eventually_sync(lambda: "uma (user)" in one(browser, 'tr[data-team="team-roles"]').text, "the new member in the team's row")
    browser.save_screenshot(str(shots / "teams-team-admin.png"))
    team = httpx.get(f"{base}/team/info", params={"team_id": "team-roles"}, headers=admin_headers(), timeout=10).json()
    assert {"user_id": "uma", "role": "user"}.items() <= next(
        m for m in team["team_info"]["members_with_roles"] if m["user_id"] == "uma"
    ).items()


def test_long_lists_page_by_25(stack, browser) -> None:
    base = stack.base_url
    for i in range(27):
        made = httpx.post(
            f"{base}/key/generate",
            json={"key_alias": f"bulk-{i:02d}", "team_id": "team-bulk"},
            headers=admin_headers(),
            timeout=10,
        )
        assert made.status_code == 200, made.text
    browser.delete_all_cookies()
    sign_in(browser, base)
    ready(browser, "overview")
    open_page(browser, base, "keys")
    fill(browser, "key-filter", {"team_id": "team-bulk"})
    eventually_sync(lambda: "page 1 of 2 · 27 rows" in one(browser, "#keys-table .pager").text, "a pager over two pages")
    assert len(css(browser, "#keys-table tr[data-alias]")) == 25
    one(browser, "#keys-table .pager button.next").click()
    eventually_sync(lambda: len(css(browser, "#keys-table tr[data-alias]")) == 2, "the second page's two keys")
    assert "page 2 of 2" in one(browser, "#keys-table .pager").text


def test_a_forged_post_from_another_page_is_refused(stack, browser, tmp_path: Path) -> None:
    """A page of another origin on the same site (127.0.0.1, another port: the session's Lax cookie
    goes along) makes the signed-in browser post a form and a fetch to the admin API: both 403."""
    base = stack.base_url
    victim = httpx.post(f"{base}/key/generate", json={"key_alias": "victim-key"}, headers=admin_headers(), timeout=10).json()
    (tmp_path / "forged.html").write_text(
        "<!doctype html><html><body>"
        f'<form method="post" action="{base}/key/block"><input name="key" value="{victim["token"]}"></form>'
        "<script>"
        f"fetch('{base}/key/block', {{method: 'POST', credentials: 'include', mode: 'no-cors',"
        f" body: JSON.stringify({{key: '{victim['token']}'}})}}).finally(() => document.forms[0].submit());"
        "</script></body></html>"
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.delete_all_cookies()
        sign_in(browser, base)
        ready(browser, "overview")
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/forged.html")
        eventually_sync(lambda: "CSRF token" in browser.page_source, "the forged form's answer")
        assert "permission_denied" in browser.page_source
    finally:
        server.shutdown()
        server.server_close()
    info = httpx.get(f"{base}/key/info", params={"key": victim["token"]}, headers=admin_headers(), timeout=10).json()
    assert info["info"]["blocked"] is False
    refusals = [line for line in stack.edge.output().splitlines() if '"path":"/key/block"' in line and '"status":403' in line]
    assert len(refusals) >= 2, refusals  # the fetch's and the form's


def test_a_key_is_edited_regenerated_and_deleted_in_the_page(stack, browser) -> None:
    base = stack.base_url
    made = httpx.post(f"{base}/key/generate", json={"key_alias": "edit-me"}, headers=admin_headers(), timeout=10).json()
    browser.delete_all_cookies()
    sign_in(browser, base)
    ready(browser, "overview")
    open_page(browser, base, "keys")
    fill(browser, "key-filter", {"key_alias": "edit-me"})
    row = 'tr[data-alias="edit-me"]'
    one(browser, f"{row} button.edit").click()
    fill(browser, "key-edit", {"models": "gpt-4", "max_budget": "7"})
    info = lambda key: httpx.get(f"{base}/key/info", params={"key": key}, headers=admin_headers(), timeout=10)  # noqa: E731
    eventually_sync(lambda: info(made["key"]).json()["info"]["max_budget"] == 7.0, "the edit saved")
    assert info(made["key"]).json()["info"]["models"] == ["gpt-4"]
    eventually_sync(lambda: "$7.00" in one(browser, row).text, "the edited budget shown")

    regenerate = one(browser, f"{row} button.regenerate")
    regenerate.click()
    assert regenerate.text == "Confirm regenerate"  # (a second click does it)
    regenerate.click()
    new_key = eventually_sync(lambda: one(browser, "#new-key-value").text, "the regenerated key, shown once")
    assert new_key.startswith("sk-") and new_key != made["key"]
    assert info(made["key"]).status_code == 404
    chat = openai.OpenAI(base_url=f"{base}/v1", api_key=new_key, max_retries=0)
    assert chat.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}]).choices
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{base}/v1", api_key=made["key"], max_retries=0).chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hi"}]
        )

    delete = one(browser, f"{row} button.delete")
    delete.click()
    delete.click()
    eventually_sync(lambda: not css(browser, row), "the deleted key gone from the list")
    assert info(new_key).status_code == 404


def test_a_key_past_its_soft_budget_is_an_alert(stack, browser) -> None:
    base = stack.base_url
    made = httpx.post(
        f"{base}/key/generate",
        json={"key_alias": "soft-key", "max_budget": 1, "soft_budget": 0.000001},
        headers=admin_headers(),
        timeout=10,
    ).json()
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=made["key"], max_retries=0)
    assert client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}]).choices

    def spent() -> float:
        answer = httpx.get(f"{base}/key/info", params={"key": made["key"]}, headers=admin_headers(), timeout=10)
        return answer.json()["info"]["spend"]

    eventually_sync(lambda: spent() > 0.000001, "the key's spend past its soft budget")
    browser.delete_all_cookies()
    sign_in(browser, base)
    ready(browser, "overview")
    open_page(browser, base, "budgets")
    alerts = one(browser, "#budget-alerts").text
    assert "key soft-key" in alerts and "past its alert level of" in alerts, alerts
    bar = one(browser, 'tr[data-holder="key:soft-key"] svg.bar')
    assert float(bar.get_attribute("data-spend")) == pytest.approx(spent(), rel=1e-6)
