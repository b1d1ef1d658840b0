"""Console sessions (gateway/console/sessions.py) on a real nats-server: what the SSO sign-in and
the master-key login share. Stored under the HMAC of the id, seen by every edge, ended by sign-out
or an admin, gone at their max age; the cookie HttpOnly, SameSite=Lax, Secure over TLS."""

from __future__ import annotations

import pytest
from litestar import Response

from gateway.console.sessions import COOKIE, ConsoleSessions, cookie_session_id, csrf_ok
from llmgw.contracts import Subjects
from llmgw.secrets import KeyHasher
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SECRET = b"console-sessions-test-secret-0123"


async def edge_sessions(nats_client, prefix: str, max_age: float = 60.0) -> ConsoleSessions:
    sessions = ConsoleSessions(Subjects(prefix), KeyHasher(SECRET), max_age)
    await sessions.open(nats_client.jetstream())
    return sessions


async def test_a_session_is_seen_by_every_edge_and_ends_on_all(nats_client, bus_prefix):
    one = await edge_sessions(nats_client, bus_prefix)
    other = await edge_sessions(nats_client, bus_prefix)
    try:
        sid = await one.start(user_id="ana", email="ana@example.com", role="team_admin", teams=["t1"], via="oidc")
        key, record = one.lookup(sid)
        assert (record.user_id, record.email, record.role, record.teams, record.via) == (
            "ana",
            "ana@example.com",
            "team_admin",
            ["t1"],
            "oidc",
        )
        assert record.expires_at - record.created_at == pytest.approx(60.0)
        assert sid not in key and record.csrf_token and record.csrf_token != sid
        stored = await one.map.kv.get(key)
        assert sid.encode() not in stored.value  # the bucket never holds the cookie's value
        await other.ensure(sid)  # (read from KV at once if the watch has not brought it yet)
        assert other.lookup(sid) is not None
        assert csrf_ok(record, record.csrf_token) and not csrf_ok(record, None) and not csrf_ok(record, record.csrf_token + "x")
        assert one.lookup("not-a-session") is None and one.lookup(None) is None

        await one.end(sid)
        assert one.lookup(sid) is None
        await eventually(lambda: other.lookup(sid) is None, "the other edge to see the session ended", timeout=5)
        await other.ensure(sid)  # an ended session is not read back
        assert other.lookup(sid) is None
        assert not await other.end_key(key)
    finally:
        await one.close()
        await other.close()


async def test_a_session_ends_at_its_max_age_and_roles_are_checked(nats_client, bus_prefix):
    sessions = await edge_sessions(nats_client, bus_prefix, max_age=1.0)
    try:
        with pytest.raises(ValueError, match="role"):
            await sessions.start(user_id="x", email=None, role="superuser", teams=[], via="oidc")
        sid = await sessions.start(user_id="bo", email=None, role="internal_user", teams=[], via="oidc")
        assert sessions.lookup(sid) is not None
        await eventually(lambda: sessions.lookup(sid) is None, "the session to expire", timeout=5, interval=0.1)
    finally:
        await sessions.close()


def test_the_cookie_is_http_only_lax_and_secure_over_tls():
    sessions = ConsoleSessions(Subjects("x"), KeyHasher(SECRET), 3600)
    for secure in (False, True):
        response = Response(content=b"")
        sessions.set_cookie(response, "the-id", secure=secure)
        header = next(v for k, v in response.to_asgi_response(None, None).encode_headers() if k == b"set-cookie").decode().lower()  # type: ignore[arg-type]
        assert (
            header.startswith(f"{COOKIE}=the-id")
            and "httponly" in header
            and "samesite=lax" in header
            and "max-age=3600" in header
        )
        assert ("secure" in header.replace("samesite", "")) is secure
    assert cookie_session_id(f"a=b; {COOKIE}=abc") == "abc"
    assert cookie_session_id("a=b") is None and cookie_session_id(None) is None
