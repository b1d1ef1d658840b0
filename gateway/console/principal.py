"""A console session as the admin routes' principal: the same role checks as for a key apply.

A request with no key but a session cookie is the session's person, when it carries the session's
CSRF token (`x-llmgw-csrf`); without it (a forged cross-site request) it is refused with 403, and a
cookie of an ended or expired session with 401. Model routes never look here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar import Request

from gateway.auth import Principal, forbidden
from gateway.console.sessions import CSRF_HEADER, cookie_session_id, csrf_ok
from gateway.errors import GatewayError
from llmgw.contracts import (
    CONSOLE_ROLE_PROXY_ADMIN,
    ROLE_INTERNAL_USER,
    ROLE_PROXY_ADMIN,
    Caller,
    ConsoleSession,
    ErrorCode,
    ErrorType,
)

if TYPE_CHECKING:
    from gateway.edge import Edge


def principal_of(edge: Edge, record: ConsoleSession) -> Principal:
    """Whom a session acts as: the master key's principal for a break-glass sign-in, else its user
    (a proxy admin, or an internal user whose team roles decide what it manages)."""
    if record.via == "master_key" and edge.auth.master is not None:
        return edge.auth.master
    user = edge.identity.user(record.user_id)
    team_id = record.teams[0] if record.teams else None
    return Principal(
        caller=Caller(key_hash=f"console:{record.user_id}", key_alias="console", user_id=record.user_id, team_id=team_id),
        role=ROLE_PROXY_ADMIN if record.role == CONSOLE_ROLE_PROXY_ADMIN else ROLE_INTERNAL_USER,
        user=user,
        team=edge.identity.team(team_id),
    )


def session_principal(edge: Edge, request: Request) -> Principal | None:
    """The principal of the request's console session; None when it sends no session cookie."""
    session_id = cookie_session_id(request.headers.get("cookie"))
    if session_id is None:
        return None
    found = edge.console.lookup(session_id)
    if found is None:
        raise GatewayError(
            401, "Your console session has ended or expired; sign in again.", ErrorType.AUTHENTICATION, ErrorCode.INVALID_API_KEY
        )
    _, record = found
    if not csrf_ok(record, request.headers.get(CSRF_HEADER)):
        raise forbidden(f"A console request must carry the session's CSRF token in the `{CSRF_HEADER}` header.")
    return principal_of(edge, record)
