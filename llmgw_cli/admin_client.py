"""The admin API of a running gateway, over HTTP with the master key; key aliases resolved."""

from __future__ import annotations

import re
from typing import Any

import httpx

from llmgw.secrets import KEY_PREFIX
from llmgw_cli.output import CommandError

TIMEOUT = 30.0
PAGE_SIZE = 1000  # the most /key/list and /user/info give in one page
_TOKEN_PREFIX = re.compile(r"^[0-9a-f]{8,64}$")


class Answer:
    """A JSON answer: decoded, and its bytes as the gateway wrote them (for `--json`)."""

    def __init__(self, body: Any, raw: bytes) -> None:
        self.body = body
        self.raw = raw


class AdminClient:
    def __init__(self, url: str, master_key: str) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {master_key}"}

    def call(self, method: str, path: str, fields: dict[str, Any]) -> Answer:
        try:
            if method == "GET":
                resp = httpx.get(self.url + path, params=fields, headers=self.headers, timeout=TIMEOUT)
            else:
                resp = httpx.post(self.url + path, json=fields, headers=self.headers, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            raise CommandError(
                f"llmgw: cannot reach the gateway at {self.url}: {exc or type(exc).__name__} (LLMGW_URL, --url)"
            ) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            message = (
                body.get("error", {}).get("message") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
            )
            raise CommandError(f"llmgw: {message or resp.text.strip() or resp.reason_phrase} (HTTP {resp.status_code})")
        if body is None:
            raise CommandError(f"llmgw: the gateway answered {path} with something that is not JSON")
        return Answer(body, resp.content)

    def all_keys(self, **filters: str) -> list[dict[str, Any]]:
        """Every key (as /key/info shows it) matching the filters, page after page."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self.call("GET", "/key/list", {**filters, "return_full_object": "true", "size": PAGE_SIZE, "page": page})
            found.extend(answer.body.get("keys") or [])
            if page >= int(answer.body.get("total_pages") or 1):
                return found
            page += 1

    def all_users(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 0
        while True:
            answer = self.call("GET", "/user/info", {"view_all": "true", "page_size": PAGE_SIZE, "page": page})
            found.extend(answer.body.get("users") or [])
            if page + 1 >= int(answer.body.get("total_pages") or 1):
                return found
            page += 1

    def resolve_key(self, ref: str) -> str:
        """A key as the admin API takes it: the key itself (sk-...), or the token of the key that
        has this alias or whose token starts with these hex digits."""
        if ref.startswith(KEY_PREFIX):
            return ref
        by_alias = [k["token"] for k in self.all_keys(key_alias=ref)]
        if len(by_alias) == 1:
            return by_alias[0]
        if len(by_alias) > 1:
            raise CommandError(f"llmgw: {len(by_alias)} keys have the alias {ref!r}: name one by its token (`llmgw keys list`)")
        if _TOKEN_PREFIX.match(ref):
            by_token = [k["token"] for k in self.all_keys() if k["token"].startswith(ref)]
            if len(by_token) == 1:
                return by_token[0]
            if len(by_token) > 1:
                raise CommandError(f"llmgw: {len(by_token)} keys have a token starting with {ref!r}: give more of it")
        raise CommandError(f"llmgw: no key has the alias or token {ref!r} (`llmgw keys list` shows them)")
