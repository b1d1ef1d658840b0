"""A real OpenID Provider for the single sign-on tests: the npm `oidc-provider` package (OpenID
Certified) run by tests/node/oidc_provider.mjs as its own process, with one confidential client
(PKCE required), RP-initiated logout and its own login form; and a browser-less sign-in through
that form with httpx (`sign_in`).

Test accounts: `alice` (corp.example, in the group mapped to proxy_admin, on team-alpha), `tara`
(corp.example, team lead of team-alpha), `ellen` (corp.example, no group, made by an admin beforehand), `mallory` (another domain)."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import httpx

from tests.npm_packages import npm_package
from tests.procs import REPO, Proc, free_port
from tests.waiting import eventually_sync

OIDC_PROVIDER = ("oidc-provider", "9.13.3")
SCRIPT = REPO / "tests" / "node" / "oidc_provider.mjs"
CLIENT_ID = "llmgw-console"
CLIENT_SECRET = "sso-client-secret-4c1d"
ADMIN_GROUP = "llmgw-admins"
LEAD_GROUP = "llmgw-team-leads"
ACCOUNTS = {
    "alice": {
        "password": "alice-pw-1",
        "claims": {
            "email": "Alice@corp.example",
            "email_verified": True,
            "name": "Alice",
            "groups": [ADMIN_GROUP, "everyone"],
            "teams": ["team-alpha"],
        },
    },
    "tara": {
        "password": "tara-pw-2",
        "claims": {
            "email": "tara@corp.example",
            "email_verified": True,
            "groups": [LEAD_GROUP],
            "teams": ["team-alpha", "team-nowhere"],
        },
    },
    "ellen": {  # an admin made her user before single sign-on, under her address
        "password": "ellen-pw-4",
        "claims": {"email": "ellen@corp.example", "email_verified": True, "groups": []},
    },
    "mallory": {
        "password": "mallory-pw-3",
        "claims": {"email": "mallory@elsewhere.example", "email_verified": True, "groups": [ADMIN_GROUP]},
    },
}


class OidcProvider:
    def __init__(self, root: Path, redirect_uris: list[str], post_logout_redirect_uris: list[str]) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        modules = npm_package(*OIDC_PROVIDER, required_in_ci=True) / "node_modules"
        accounts = root / "oidc-accounts.json"
        accounts.write_text(json.dumps(ACCOUNTS))
        client = root / "oidc-client.json"
        client.write_text(
            json.dumps(
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": redirect_uris,
                    "post_logout_redirect_uris": post_logout_redirect_uris,
                }
            )
        )
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "OIDC_PROVIDER_MODULES": str(modules)}
        self.proc = Proc(
            f"oidc-provider-{self.port}", ["node", str(SCRIPT), str(self.port), str(accounts), str(client)], env, root
        )

    def start(self) -> OidcProvider:
        self.proc.start()

        def discovered() -> bool:
            if not self.proc.running:
                raise AssertionError(f"the OpenID provider exited:\n{self.proc.output()[-2000:]}")
            return httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200

        eventually_sync(
            discovered, "the OpenID provider to serve its discovery document", timeout=30, retrying=(httpx.HTTPError,)
        )
        return self

    def stop(self) -> None:
        self.proc.stop()


FORM = re.compile(r'<form[^>]*id="login"[^>]*action="([^"]+)"', re.S)


def submit_login(http: httpx.Client, page: httpx.Response, login: str, password: str) -> httpx.Response:
    """Fill in and send the provider's login form found on `page`."""
    found = FORM.search(page.text)
    assert found, f"no login form on {page.url}: {page.text[:500]}"
    action = urljoin(str(page.url), unescape(found.group(1)))
    return http.post(action, data={"login": login, "password": password})


def sign_in(http: httpx.Client, start: str, login: str, password: str, stop_at: str | None = None) -> httpx.Response:
    """A sign-in from `start` (the gateway's /ui/sso/login) through the provider's login form, each
    redirect followed by hand; the answer at the end, or the redirect whose target starts with
    `stop_at`."""
    answer = http.get(start)
    submitted = False
    for _ in range(20):
        if answer.is_redirect:
            target = urljoin(str(answer.url), answer.headers["location"])
            if stop_at is not None and target.startswith(stop_at):
                return answer
            answer = http.get(target)
            continue
        if not submitted and FORM.search(answer.text):
            answer = submit_login(http, answer, login, password)
            submitted = True
            continue
        return answer
    raise AssertionError("too many redirects in the sign-in")
