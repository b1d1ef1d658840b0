"""OpenAI's list pages, shared by the stored records' routes (stored responses' input items,
stored chat completions and their messages): the `limit` and `order` parameters, a page cut
after an id, and the list object (`object: "list"`, `data`, `first_id`, `last_id`, `has_more`)."""

from __future__ import annotations

from typing import Any

from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


def bad_request(message: str, param: str | None, code: str = ErrorCode.INVALID_REQUEST) -> GatewayError:
    """A 400 invalid_request_error naming the field (`param`) as OpenAI does."""
    return GatewayError(400, message, ErrorType.INVALID_REQUEST, code, param)


def limit_param(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request(f"Invalid 'limit': expected a whole number from 1 to {MAX_LIMIT}, got {raw!r}.", "limit")
    return int(raw)


def order_param(raw: str | None, default: str) -> str:
    if raw is None:
        return default
    if raw not in ("asc", "desc"):
        raise bad_request(f"Invalid 'order': expected 'asc' or 'desc', got {raw!r}.", "order")
    return raw


def list_object(page: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": has_more,
    }


def paged(items: list[dict[str, Any]], limit: int, order: str, after: str | None, what: str) -> dict[str, Any]:
    """The list object of `items` (oldest first) in `order`, from just after the item `after`;
    a 400 when no item has that id (`what` names them in the message)."""
    if order == "desc":
        items = items[::-1]
    if after is not None:
        position = next((i for i, item in enumerate(items) if item["id"] == after), None)
        if position is None:
            raise bad_request(f"Invalid 'after': no {what} with id '{after}'.", "after")
        items = items[position + 1 :]
    return list_object(items[:limit], len(items) > limit)
