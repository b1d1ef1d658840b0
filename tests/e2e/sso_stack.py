"""The gateway with single sign-on to its console, for the SSO e2e modules: the stack's processes
(tests/e2e/stack.py) configured for a real OpenID Provider started first (tests/sso_provider.py),
and the team the test accounts' teams claim names."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.stack import MASTER_KEY, Stack, write_config
from tests.procs import FakeUpstream
from tests.sso_provider import ACCOUNTS, ADMIN_GROUP, CLIENT_ID, CLIENT_SECRET, LEAD_GROUP, OidcProvider

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
PASSWORDS = {login: account["password"] for login, account in ACCOUNTS.items()}
CONSOLE_COOKIE = "llmgw_console"
TEAM = "team-alpha"


def sso_block(issuer: str) -> str:
    return "\n".join(
        [
            "  ui_sso:",
            f"    issuer: {issuer}",
            f"    client_id: {CLIENT_ID}",
            "    client_secret: os.environ/E2E_SSO_SECRET",
            "    scopes: [openid, email, profile, groups]",
            "    allowed_email_domains: [corp.example]",
            "    role_claim: groups",
            f"    role_mapping: {{{ADMIN_GROUP}: proxy_admin, {LEAD_GROUP}: team_admin}}",
            "    teams_claim: teams",
        ]
    )


def start_sso_stack(root: Path, nats_url: str, prefix: str, upstream: FakeUpstream) -> tuple[Stack, OidcProvider]:
    """The stack and a provider that knows its callback: the edge's port first, then the provider,
    then the config naming the provider's issuer."""
    stack = Stack(root, nats_url, prefix, upstream, {"E2E_SSO_SECRET": CLIENT_SECRET}, config="")
    provider = OidcProvider(root, [f"{stack.base_url}/ui/sso/callback"], [f"{stack.base_url}/ui/login"]).start()
    config = write_config(root / "config.yaml", upstream.base_url).read_text()
    (root / "config.yaml").write_text(config + sso_block(provider.issuer) + "\n")
    try:
        stack.start()
        made = httpx.post(f"{stack.base_url}/team/new", headers=ADMIN, json={"team_id": TEAM}, timeout=10)
        assert made.status_code == 200, made.text
    except BaseException:
        provider.stop()
        stack.stop()
        raise
    return stack, provider
