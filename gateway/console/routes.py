"""The console's routes at /ui: sign-in with the master key, sign-out, the pages, their static files,
and the admin's list of sessions (ending one). Every action a page takes is a call of the admin API
(the same routes curl users call), made by its script with the session's CSRF token."""

from __future__ import annotations

from importlib import resources
from typing import Any

import msgspec
import structlog
from litestar import Request, Response, get, post
from litestar.response import Redirect

from gateway.admin.common import admin, iso, json_response
from gateway.admin.params import decode_body
from gateway.admin.store import not_found
from gateway.auth import forbidden
from gateway.console.pages import PAGES, SECURITY_HEADERS, login_page, page
from gateway.console.sessions import CSRF_FIELD, cookie_session_id, csrf_ok
from gateway.console.sso_routes import SSO_VIA, ConsoleSso, leave_for
from gateway.edge import Edge
from gateway.errors import KEY_GUESS
from llmgw.contracts import CONSOLE_ROLE_PROXY_ADMIN

log = structlog.get_logger()

STATIC_TYPES = {
    "console.js": "text/javascript; charset=utf-8",
    "console-pages.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


class EndSession(msgspec.Struct, frozen=True, kw_only=True):
    session: str  # the session's key, as /ui/sessions/list shows it


def _secure(request: Request) -> bool:
    """Served over TLS (directly, or behind a proxy that says so)."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def _html(body: str, status: int = 200) -> Response:
    return Response(content=body, media_type="text/html; charset=utf-8", status_code=status, headers=SECURITY_HEADERS)


def _next_path(value: Any) -> str:
    path = str(value or "")
    return path if path.startswith("/ui/") and not path.startswith("//") and "\\" not in path else "/ui/overview"


def _static_files() -> dict[str, bytes]:
    folder = resources.files("gateway.console") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_TYPES}


def build_console_routes(edge: Edge, sso: ConsoleSso | None = None) -> list:
    """The console's routes; `sso`: the single sign-on its login page offers and its sign-out follows."""
    static = _static_files()
    sessions = edge.console

    def to_login(request: Request) -> Response:
        return Redirect(f"/ui/login?next={request.url.path}", status_code=303)

    @get("/ui", include_in_schema=False)
    async def root() -> Response:
        return Redirect("/ui/overview", status_code=303)

    @get("/ui/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        return _html(login_page(next_path=_next_path(request.query_params.get("next")), sso=sso is not None))

    @post("/ui/login", include_in_schema=False, status_code=303)
    async def login(request: Request) -> Response:
        form = await request.form()
        key = str(form.get("master_key") or "")
        next_path = _next_path(form.get("next"))
        if not key or not edge.auth.check_master(key):
            log.warning("console_login_refused", via="master_key")
            request.scope["state"][KEY_GUESS] = True  # counted as a failed authentication (gateway/auth_guard)
            return _html(login_page("That is not the master key.", next_path, sso=sso is not None), status=401)
        session_id = await sessions.start(user_id="master", email=None, role=CONSOLE_ROLE_PROXY_ADMIN, teams=[], via="master_key")
        response = Redirect(next_path, status_code=303)
        sessions.set_cookie(response, session_id, _secure(request))
        return response

    @post("/ui/logout", include_in_schema=False, status_code=303)
    async def logout(request: Request) -> Response:
        session_id = cookie_session_id(request.headers.get("cookie"))
        found = sessions.lookup(session_id)
        response: Response = Redirect("/ui/login", status_code=303)
        if found is not None and session_id is not None:
            form = await request.form()
            if not csrf_ok(found[1], str(form.get(CSRF_FIELD) or "")):
                raise forbidden("Signing out needs the session's CSRF token.", CSRF_FIELD)
            await sessions.end(session_id)
            provider_logout = await sso.provider_logout(request) if sso is not None and found[1].via == SSO_VIA else None
            if provider_logout is not None:
                response = leave_for(provider_logout)  # the provider's own logout (RP-initiated) next
        sessions.clear_cookie(response, _secure(request))
        return response

    @get("/ui/static/{name:str}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        if name not in static:
            raise not_found(f"file {name!r}")
        return Response(content=static[name], media_type=STATIC_TYPES[name], headers={"cache-control": "no-cache"})

    @get("/ui/{name:str}", include_in_schema=False)
    async def show(request: Request, name: str) -> Response:
        session = sessions.current(request)
        if session is None:
            return to_login(request)
        if name not in PAGES:
            return Redirect("/ui/overview", status_code=303)
        return _html(page(name, session))

    @get("/ui/request/{request_id:str}", include_in_schema=False)
    async def show_request(request: Request, request_id: str) -> Response:
        session = sessions.current(request)
        if session is None:
            return to_login(request)
        return _html(page("request", session, detail=request_id))

    @get("/ui/sessions/list", include_in_schema=False)
    async def list_sessions(request: Request) -> Response:
        admin(edge, request)
        return json_response({
            "sessions": [
                {"session": key, "user_id": r.user_id, "email": r.email, "role": r.role, "teams": r.teams, "via": r.via,
                 "created_at": iso(r.created_at), "expires_at": iso(r.expires_at)}
                for key, r in sessions.live()
            ]
        })  # fmt: skip

    @post("/ui/sessions/end", include_in_schema=False, status_code=200)
    async def end_session(request: Request) -> Response:
        admin(edge, request)
        ref = decode_body(await request.body(), EndSession)
        if not await sessions.end_key(ref.session):
            raise not_found("session")
        return json_response({"ended": ref.session})

    return [root, login_form, login, logout, static_file, show, show_request, list_sessions, end_session]
