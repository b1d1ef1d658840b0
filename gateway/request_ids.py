"""Every answer carries `x-request-id`: the hot routes set their own (it is also the request's id
in logs and usage rows); this `before_send` hook gives one to every other answer (admin, health,
models, and Litestar's own 404/405, which no route middleware sees)."""

from __future__ import annotations

import os

from litestar.types import Message, Scope

HEADER = b"x-request-id"


async def add_request_id(message: Message, scope: Scope) -> None:
    if message["type"] == "http.response.start":
        headers = message.get("headers") or []
        if not any(name == HEADER for name, _ in headers):
            message["headers"] = [*headers, (HEADER, f"req-{os.urandom(16).hex()}".encode())]
