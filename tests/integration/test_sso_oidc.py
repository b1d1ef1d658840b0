"""The console's OpenID Connect relying party (gateway/console/oidc.py) against a real OpenID
Provider (`oidc-provider` from npm, tests/sso_provider.py): discovery, the authorization code flow
with PKCE through the provider's own login form, the ID token verified, the claims completed from
userinfo; and what must be refused (a wrong password, a code without its verifier, another
client's audience, another sign-in's nonce)."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msgspec
import pytest

from gateway.console.oidc import OidcClient, Pending, SsoError
from gateway.console.sso_config import SsoSettings, sso_settings
from tests.sso_provider import ACCOUNTS, ADMIN_GROUP, CLIENT_ID, CLIENT_SECRET, OidcProvider, sign_in, submit_login

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REDIRECT = "http://127.0.0.1:9/ui/sso/callback"  # never reached: the tests stop at the redirect


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory):
    op = OidcProvider(tmp_path_factory.mktemp("oidc"), [REDIRECT], ["http://127.0.0.1:9/ui/login"]).start()
    yield op
    op.stop()


def settings_for(provider: OidcProvider, **changes) -> SsoSettings:
    raw = {
        "issuer": provider.issuer,
        "client_id": CLIENT_ID,
        "client_secret": "os.environ/SSO_SECRET",
        "scopes": ["openid", "email", "groups"],
        "role_claim": "groups",
        "role_mapping": {ADMIN_GROUP: "proxy_admin"},
        "teams_claim": "teams",
        **changes,
    }
    found = sso_settings({"ui_sso": raw}, {"SSO_SECRET": CLIENT_SECRET})
    assert found is not None
    return found


async def code_for(client: OidcClient, login: str) -> tuple[str, Pending]:
    url, pending = await client.begin(REDIRECT, "/ui/keys")

    def browse() -> httpx.Response:
        with httpx.Client(timeout=10) as http:
            return sign_in(http, url, login, ACCOUNTS[login]["password"], stop_at=REDIRECT)

    answer = await asyncio.to_thread(browse)
    assert answer.is_redirect, answer.text[:500]
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == [pending.state]
    return query["code"][0], pending


async def test_sign_in_with_pkce_gives_verified_claims(provider: OidcProvider):
    client = OidcClient(settings_for(provider))
    try:
        code, pending = await code_for(client, "alice")
        claims, id_token = await client.finish(code, pending)
    finally:
        await client.close()
    assert claims["sub"] == "alice" and claims["iss"] == provider.issuer and claims["aud"] == CLIENT_ID
    assert claims["nonce"] == pending.nonce
    # The provider keeps scope claims for userinfo in the code flow: completed from there.
    assert claims["email"] == "Alice@corp.example" and claims["groups"] == [ADMIN_GROUP, "everyone"]
    assert client.settings.role_for(claims) == "proxy_admin"
    assert client.settings.teams_for(claims) == ["team-alpha"]
    assert id_token.count(".") == 2


async def test_a_code_is_refused_without_its_verifier_and_used_once(provider: OidcProvider):
    client = OidcClient(settings_for(provider))
    try:
        code, pending = await code_for(client, "alice")
        forged = msgspec.structs.replace(pending, verifier="x" * 64)
        with pytest.raises(SsoError, match="refused the sign-in code"):
            await client.finish(code, forged)
        code, pending = await code_for(client, "alice")
        await client.finish(code, pending)
        with pytest.raises(SsoError, match="refused the sign-in code"):
            await client.finish(code, pending)  # a code is good once
    finally:
        await client.close()


async def test_another_sign_ins_nonce_is_refused(provider: OidcProvider):
    client = OidcClient(settings_for(provider))
    try:
        code, pending = await code_for(client, "alice")
        with pytest.raises(SsoError, match="nonce"):
            await client.finish(code, msgspec.structs.replace(pending, nonce="another-sign-in"))
    finally:
        await client.close()


async def test_an_id_token_for_another_audience_is_refused(provider: OidcProvider):
    client = OidcClient(settings_for(provider))
    try:
        code, pending = await code_for(client, "alice")
        tokens = await client._exchange(await client.metadata(), code, pending)
        assert tokens.id_token
        other = OidcClient(settings_for(provider, client_id="another-client"))
        try:
            with pytest.raises(SsoError, match=r"(?i)audience"):
                await other._verify(await other.metadata(), tokens.id_token, pending.nonce)
        finally:
            await other.close()
    finally:
        await client.close()


async def test_the_provider_requires_pkce_and_checks_passwords(provider: OidcProvider):
    client = OidcClient(settings_for(provider))
    try:
        url, _ = await client.begin(REDIRECT, "/ui")
        meta = await client.metadata()
    finally:
        await client.close()
    assert meta.end_session_endpoint == f"{provider.issuer}/session/end"
    no_pkce = url.replace("code_challenge_method=S256", "").replace("code_challenge=", "cc_removed=")

    def browse() -> None:
        with httpx.Client(timeout=10) as http:
            refused = http.get(no_pkce)
            assert refused.is_redirect and "error=invalid_request" in refused.headers["location"]
            page = sign_in(http, url, "alice", "not-her-password", stop_at=REDIRECT)
            assert page.status_code == 200 and "Wrong username or password" in page.text
            again = submit_login(http, page, "alice", ACCOUNTS["alice"]["password"])
            assert again.is_redirect

    await asyncio.to_thread(browse)


async def test_an_issuer_that_does_not_match_discovery_is_refused(provider: OidcProvider):
    client = OidcClient(settings_for(provider, issuer=provider.issuer + "/"))
    try:
        with pytest.raises(SsoError, match="another issuer"):
            await client.metadata()
    finally:
        await client.close()


async def test_a_token_not_signed_by_the_providers_keys_is_refused(provider: OidcProvider):
    """A token that says all the right things, signed by another key under the provider's key id,
    or not signed at all, is refused."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    client = OidcClient(settings_for(provider))
    try:
        meta = await client.metadata()
        now = int(time.time())
        claims = {"iss": provider.issuer, "sub": "alice", "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": "n"}
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "test-key-1"})
        with pytest.raises(SsoError, match="refused"):
            await client._verify(meta, forged, "n")
        unsigned = jwt.encode(claims, None, algorithm="none")
        with pytest.raises(SsoError, match="not accepted"):
            await client._verify(meta, unsigned, "n")
        unknown_key = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "not-published"})
        with pytest.raises(SsoError, match="does not publish"):
            await client._verify(meta, unknown_key, "n")
    finally:
        await client.close()
