"""Console sessions: who is signed in to /ui, kept in a JetStream KV bucket so any edge knows them
and an admin can end one.

A session id is the cookie's value (HttpOnly, SameSite=Lax, Secure over TLS); the bucket holds the
record under the HMAC of the id, never the id itself. A session ends at its max age (the record's
`expires_at`, and the bucket's TTL), when its person signs out, or when an admin ends it.

A session is not an API key: it authorizes the admin API only, and only when the request carries
the session's CSRF token in the `x-llmgw-csrf` header (a page of another site can make the browser
send the cookie, never the header), and never a model route (`/v1/...`: they read keys only).
"""

from __future__ import annotations

import hmac
import secrets
import time
from http.cookies import SimpleCookie
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from nats.js import JetStreamContext

from gateway.asgi_io import Receive, Scope, Send
from gateway.kept_records import open_bucket
from llmgw.contracts import CONSOLE_ROLES, ConsoleSession, Subjects
from llmgw.kv import WatchedMap, delete_key
from llmgw.secrets import KeyHasher

log = structlog.get_logger()

COOKIE = "llmgw_console"
CSRF_HEADER = "x-llmgw-csrf"
CSRF_FIELD = "csrf_token"


def cookie_session_id(cookie_header: str | None) -> str | None:
    """The session id in a `Cookie` header, if it has one."""
    if not cookie_header or COOKIE not in cookie_header:
        return None
    try:
        jar: SimpleCookie = SimpleCookie()
        jar.load(cookie_header)
    except Exception:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


class ConsoleSessions:
    """The sessions of the console; one per edge process, a watch-fed copy of the bucket."""

    def __init__(self, subjects: Subjects, hasher: KeyHasher, max_age: float) -> None:
        self.subjects = subjects
        self.hasher = hasher
        self.max_age = max_age
        self.js: JetStreamContext | None = None
        self.map: WatchedMap[ConsoleSession] = None  # type: ignore[assignment]  # set in open()

    async def open(self, js: JetStreamContext) -> None:
        """Connect to the bucket (made with the max age as its TTL) and start watching it."""
        self.js = js
        kv = await open_bucket(js, self.subjects.console_sessions_bucket, self.max_age)
        self.map = WatchedMap(kv, msgspec.json.Decoder(ConsoleSession), "console_sessions")
        await self.map.start()

    async def close(self) -> None:
        if self.map is not None:
            await self.map.stop()

    def key_of(self, session_id: str) -> str:
        """The bucket's key of a session: the HMAC of its id."""
        return self.hasher.token(f"console-session:{session_id}")

    async def start(self, *, user_id: str, email: str | None, role: str, teams: list[str], via: str) -> str:
        """A new session for a person who just signed in; its id (the cookie's value)."""
        if role not in CONSOLE_ROLES:
            raise ValueError(f"role must be one of {', '.join(CONSOLE_ROLES)}; got {role!r}")
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        record = ConsoleSession(
            user_id=user_id,
            email=email,
            role=role,
            teams=list(teams),
            via=via,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self.max_age,
        )
        key = self.key_of(session_id)
        revision = await self.map.kv.put(key, msgspec.json.encode(record))
        await self.map.caught_up(key, revision)
        log.info("console_session_started", user_id=user_id, role=role, via=via)
        return session_id

    async def end(self, session_id: str) -> None:
        """End a session by its id (sign-out)."""
        await self.end_key(self.key_of(session_id))

    async def end_key(self, key: str) -> bool:
        """End a session by its bucket key (what an admin's list shows); False if there was none."""
        if key not in self.map.items and not await self._fetch(key):
            return False
        assert self.js is not None
        revision = await delete_key(self.js, self.map.bucket, key)
        try:
            await self.map.caught_up(key, revision)
        except TimeoutError:
            pass
        log.info("console_session_ended", session=key[:12])
        return True

    def set_cookie(self, response: Response, session_id: str, secure: bool) -> None:
        """Give the browser the session's cookie: HttpOnly, SameSite=Lax, Secure over TLS."""
        response.set_cookie(COOKIE, session_id, max_age=int(self.max_age), path="/", secure=secure, httponly=True, samesite="lax")

    def clear_cookie(self, response: Response, secure: bool) -> None:
        response.set_cookie(COOKIE, "", max_age=0, path="/", secure=secure, httponly=True, samesite="lax")

    def lookup(self, session_id: str | None) -> tuple[str, ConsoleSession] | None:
        """The live session of an id (its key and record), None if unknown, ended or expired."""
        if not session_id:
            return None
        key = self.key_of(session_id)
        record = self.map.items.get(key)
        if record is None or record.expires_at <= time.time():
            return None
        return key, record

    def current(self, request: Request) -> ConsoleSession | None:
        """The session of a request's cookie, or None."""
        found = self.lookup(cookie_session_id(request.headers.get("cookie")))
        return found[1] if found else None

    def live(self) -> list[tuple[str, ConsoleSession]]:
        now = time.time()
        return sorted(((k, r) for k, r in self.map.items.items() if r.expires_at > now), key=lambda kr: -kr[1].created_at)

    async def _fetch(self, key: str) -> bool:
        """Read one session straight from KV into the copy (one started on another edge a moment ago)."""
        try:
            entry = await self.map.kv.get(key)
        except Exception:
            return False
        self.map.apply(key, entry.revision or 0, entry.operation, entry.value)
        return key in self.map.items

    async def ensure(self, session_id: str) -> None:
        """Make sure this edge's copy holds the session if the bucket does (read once on a miss)."""
        key = self.key_of(session_id)
        if key not in self.map.items and key not in self.map.deleted:
            await self._fetch(key)

    def middleware(self, app: Any) -> Any:
        """ASGI middleware: a request sending a session cookie and no key gets the session read from
        KV first when this edge's copy lacks it, so the admin routes can look it up without waiting."""

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            # (model routes never read sessions: their requests are left as they are)
            if scope["type"] == "http" and self.map is not None and not scope["path"].startswith("/v1/"):
                cookie = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"cookie"), None)
                session_id = cookie_session_id(cookie)
                if session_id:
                    await self.ensure(session_id)
            await app(scope, receive, send)

        return middleware


def csrf_ok(record: ConsoleSession, sent: str | None) -> bool:
    """Whether a request carried the session's CSRF token."""
    return bool(sent) and bool(record.csrf_token) and hmac.compare_digest(sent.encode(), record.csrf_token.encode())  # type: ignore[union-attr]
