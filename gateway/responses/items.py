"""The items of the Responses API: a request's input checked and read as items, a stored
conversation as the items that come before a new input, and items as `input_items` lists them.

Input items are kept as the client sent them (a string input is one user message), so they can be
sent again to any deployment; ids are given only when they are listed, derived from the response
that holds them and their position, so a listing is the same every time (`after` pages by them).
"""

from __future__ import annotations

from typing import Any

from gateway.responses.request import bad_request
from llmgw.contracts import StoredResponse

Item = dict[str, Any]

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def item_type(item: Item) -> str:
    """An item's type; a message may leave it out (`{"role": ..., "content": ...}`)."""
    kind = item.get("type")
    if isinstance(kind, str):
        return kind
    return "message" if "role" in item else ""


def _check_message(item: Item, where: str) -> None:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise bad_request(
            f"Invalid value: {role!r}. Supported values are: 'user', 'assistant', 'system', and 'developer'.", f"{where}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad_request("Invalid type: `content` must be a string or an array of content parts.", f"{where}.content")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise bad_request("Invalid content part: an object with a `type` is expected.", f"{where}.content[{j}]")


def _require_strings(item: Item, where: str, *names: str) -> None:
    for name in names:
        if not isinstance(item.get(name), str):
            raise bad_request(f"Missing required parameter: '{where}.{name}' (a string).", f"{where}.{name}")


def check_item(item: Any, where: str) -> None:
    """The fields an item of a known type needs; items of other types are the upstream's to judge
    (or refused where they cannot be translated, see `gateway.responses.to_chat`)."""
    if not isinstance(item, dict):
        raise bad_request("Invalid type: each input item must be an object.", where)
    kind = item_type(item)
    if kind == "message":
        _check_message(item, where)
    elif kind == "function_call":
        _require_strings(item, where, "call_id", "name", "arguments")
    elif kind == "function_call_output":
        _require_strings(item, where, "call_id")
        if not isinstance(item.get("output"), (str, list)):
            raise bad_request(f"Missing required parameter: '{where}.output'.", f"{where}.output")
    elif not kind:
        raise bad_request(f"Missing required parameter: '{where}.type'.", f"{where}.type")


def input_items(value: str | list[Item]) -> list[Item]:
    """The request's `input` as items (a string is one user message), each checked."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    for i, item in enumerate(value):
        check_item(item, f"input[{i}]")
    return value


def output_items(response: dict[str, Any]) -> list[Item]:
    output = response.get("output")
    return [item for item in output if isinstance(item, dict)] if isinstance(output, list) else []


def replayable(item: Item) -> bool:
    """Reasoning items go back only with their encrypted content: the upstream is told not to
    store responses (the gateway does), so it cannot find a reasoning item by its id alone; the
    model then reasons afresh, which does not change what the conversation says."""
    return item_type(item) != "reasoning" or bool(item.get("encrypted_content"))


def conversation_items(records: list[StoredResponse]) -> list[Item]:
    """The items a new input comes after: each stored response's input, then its output."""
    items: list[Item] = []
    for record in records:
        items.extend(record.input)
        items.extend(output_items(record.response))
    return [item for item in items if replayable(item)]


def listed_item(item: Item, owner_id: str, index: int) -> Item:
    """An item as `input_items` lists it: with its type, an id (its own, or one derived from the
    response that holds it and its position there) and, for a message, content parts."""
    out = dict(item)
    kind = item_type(item)
    out["type"] = kind
    if not isinstance(out.get("id"), str):
        out["id"] = f"{_ID_PREFIXES.get(kind, 'item')}_{owner_id.removeprefix('resp_')}{index:04x}"
    if kind == "message":
        content = out.get("content")
        if isinstance(content, str):
            part = "output_text" if out.get("role") == "assistant" else "input_text"
            out["content"] = [{"type": part, "text": content, **({"annotations": []} if part == "output_text" else {})}]
        out.setdefault("status", "completed")
    return out


def listed_conversation(records: list[StoredResponse]) -> list[Item]:
    """Every item the last of `records` was generated from, oldest first: the conversation before
    it (inputs and outputs of the responses it continued) and its own input."""
    items: list[Item] = []
    for position, record in enumerate(records):
        own = [listed_item(item, record.id, i) for i, item in enumerate(record.input)]
        if position < len(records) - 1:
            outputs = output_items(record.response)
            own += [listed_item(item, record.id, len(record.input) + i) for i, item in enumerate(outputs)]
        items.extend(item for item in own if replayable(item))
    return items
