"""The console's HTML: one layout around each page's empty frame; its scripts (static/console.js, the
common parts, and static/console-pages.js) fill it from the admin API, the same routes curl users
call. No inline script or style (the CSP forbids them), nothing from another origin."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from llmgw.contracts import CONSOLE_ROLE_PROXY_ADMIN, ConsoleSession

# path segment -> (title, shown in the navigation to admins only)
PAGES: dict[str, tuple[str, bool]] = {
    "overview": ("Overview", False),
    "keys": ("Keys", False),
    "teams": ("Teams", False),
    "users": ("Users", True),
    "usage": ("Usage log", True),
    "models": ("Models", False),
    "policies": ("Policies", True),
    "budgets": ("Budgets", True),
    "sessions": ("Sessions", True),
}

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def _head(title: str, csrf: str = "") -> str:
    meta = f'<meta name="csrf-token" content="{escape(csrf)}">' if csrf else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · llmgw</title>{meta}"
        '<link rel="stylesheet" href="/ui/static/console.css"></head>'
    )


def page(name: str, session: ConsoleSession, detail: str = "") -> str:
    """A signed-in page: navigation, the session's CSRF token, the frame its script fills."""
    admin = session.role == CONSOLE_ROLE_PROXY_ADMIN
    title = PAGES[name][0] if name in PAGES else "Request"
    links = "".join(
        f'<a href="/ui/{p}" class="{"on" if p == name else ""}" id="nav-{p}">{escape(t)}</a>'
        for p, (t, admin_only) in PAGES.items()
        if admin or not admin_only
    )
    who = escape(session.email or session.user_id)
    return (
        f"{_head(title, session.csrf_token)}<body>"
        f'<header><span class="brand">llmgw</span><nav>{links}</nav>'
        f'<form method="post" action="/ui/logout" class="logout"><span class="who" id="who">{who} · {escape(session.role)}</span>'
        f'<input type="hidden" name="csrf_token" value="{escape(session.csrf_token)}">'
        '<button type="submit" id="logout">Sign out</button></form></header>'
        f'<main id="page" data-page="{escape(name)}" data-detail="{escape(detail)}" data-role="{escape(session.role)}"'
        f' data-user="{escape(session.user_id)}">'
        f'<h1>{escape(title)}</h1><div id="content"><p class="muted">Loading…</p></div></main>'
        '<script src="/ui/static/console.js"></script><script src="/ui/static/console-pages.js"></script></body></html>'
    )


def _sso_link(next_path: str) -> str:
    href = "/ui/sso/login?" + urlencode({"next": next_path})
    return f'<p><a class="button" id="sso-sign-in" href="{escape(href)}">Sign in with single sign-on</a></p>'


def login_page(error: str | None = None, next_path: str = "/ui/overview", sso: bool = False) -> str:
    """The sign-in form: single sign-on when it is configured, and the master key (break-glass)."""
    message = f'<p class="error" id="login-error">{escape(error)}</p>' if error else ""
    return (
        f"{_head('Sign in')}<body class='login'><main class='card'>"
        "<h1>llmgw console</h1>"
        f"{message}{_sso_link(next_path) if sso else ''}"
        "<p class='muted'>Sign in with the master key.</p>"
        '<form method="post" action="/ui/login">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<label>Master key <input type="password" name="master_key" id="master-key" autocomplete="current-password" required></label>'
        '<button type="submit" id="sign-in">Sign in</button></form></main></body></html>'
    )
