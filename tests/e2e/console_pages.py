"""The admin console's pages as its browser tests drive them (tests/e2e/test_console.py): finding
elements, waiting for a page's script to fill it, filling and sending its forms, signing in (in the
browser with the master key, over HTTP with its CSRF token, or as single sign-on starts a session)."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import httpx

from gateway.console.sessions import COOKIE, ConsoleSessions
from gateway.settings import CONSOLE_SESSION_MAX_AGE
from llmgw.config import Secret
from llmgw.contracts import Subjects
from llmgw.secrets import KeyHasher, server_secret
from tests.e2e.stack import MASTER_KEY, Stack
from tests.waiting import eventually_sync

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def css(driver: WebDriver, selector: str) -> list[WebElement]:
    """Every element matching `selector`, now."""
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def one(driver: WebDriver, selector: str, what: str | None = None, timeout: float = 20) -> WebElement:
    """The first element matching `selector`, once there is one."""
    return eventually_sync(lambda: (css(driver, selector) or [None])[0], what or selector, timeout=timeout)


def ready(driver: WebDriver, page: str) -> None:
    """The page's script has filled it from the admin API (a page that failed says why)."""

    def loaded() -> bool:
        state = next((m.get_attribute("data-ready") for m in css(driver, f'main[data-page="{page}"]')), None)
        if state == "error":
            notice = css(driver, "#notice")
            raise RuntimeError(f"the {page} page failed: {notice[0].text if notice else '?'}")
        return state == "true"

    try:
        eventually_sync(loaded, f"the {page} page to load", timeout=20, retrying=(AssertionError,))
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the page's console: {driver.get_log('browser')}") from None


def open_page(driver: WebDriver, base: str, page: str) -> None:
    """The console's `page`, once its script has filled it."""
    driver.get(f"{base}/ui/{page}")
    ready(driver, page)


def fill(driver: WebDriver, form_id: str, values: dict[str, str]) -> None:
    """The form's fields set (`#<form>-<name>`, a select once it offers the value), then sent."""
    from selenium.webdriver.support.ui import Select

    for name, value in values.items():
        field = one(driver, f"#{form_id}-{name}")
        if field.tag_name == "select":
            eventually_sync(
                lambda f=field, v=value: v in [o.get_attribute("value") for o in Select(f).options], f"option {value}"
            )
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)
    one(driver, f"#{form_id}-submit").click()


def sign_in(driver: WebDriver, base: str, key: str = MASTER_KEY) -> None:
    """The login page's form sent with `key`."""
    driver.get(f"{base}/ui/login")
    one(driver, "#master-key").send_keys(key)
    one(driver, "#sign-in").click()


def login_session(base: str) -> tuple[httpx.Client, str]:
    """An HTTP client holding a console session (signed in with the master key) and its CSRF token."""
    client = httpx.Client(base_url=base, timeout=15)
    signed = client.post("/ui/login", data={"master_key": MASTER_KEY, "next": "/ui/keys"})
    assert signed.status_code == 303, signed.text
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # (served over plain HTTP here)
    page = client.get("/ui/keys")
    assert page.status_code == 200
    match = CSRF_META.search(page.text)
    assert match, page.text[:500]
    return client, match[1]


def admin_headers() -> dict[str, str]:
    """The admin API's headers, with the master key."""
    return {"authorization": f"Bearer {MASTER_KEY}"}


def signed_in_as(stack: Stack, **who: Any) -> str:
    """A session started as the single sign-on code starts one (ConsoleSessions.start, the interface
    it calls), into the stack's sessions bucket; its id, the cookie's value."""

    async def start() -> str:
        import nats

        nc = await nats.connect(stack.nats_url)
        try:
            secret = server_secret(stack.env, Secret(MASTER_KEY))
            sessions = ConsoleSessions(Subjects(stack.prefix), KeyHasher(secret), CONSOLE_SESSION_MAX_AGE)
            await sessions.open(nc.jetstream())
            try:
                return await sessions.start(**who)
            finally:
                await sessions.close()
        finally:
            await nc.close()

    return asyncio.run(start())


def with_cookie(driver: WebDriver, base: str, session_id: str) -> None:
    """The browser holding only the session's cookie."""
    driver.delete_all_cookies()
    driver.get(f"{base}/ui/login")
    driver.add_cookie({"name": COOKIE, "value": session_id, "path": "/", "httpOnly": True, "sameSite": "Lax"})
