"""`/end_user/*` and `/customer/*` (LiteLLM's customers): end users, their budgets and limits,
their spend and blocking them (how a request names its end user: gateway/end_users.py)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from msgspec import UNSET, UnsetType

from gateway.admin.common import admin, iso, json_response, known_budget, render, viewer
from gateway.admin.keys import check, given
from gateway.admin.params import LimitParams, bad_param, decode_body, record_values
from gateway.admin.store import RecordStore, not_found
from gateway.budget_objects import BOUNDING_FIELDS, bounded
from gateway.edge import Edge
from llmgw.contracts import EndUserRecord, LedgerKind, end_user_key, ledger_key

_LEDGER_PREFIX = f"{LedgerKind.END_USER}."  # ledger keys: "enduser." + the id's kv_key


class EndUserParams(LimitParams, kw_only=True):
    alias: str | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET
    allowed_model_region: str | UnsetType | None = UNSET
    default_model: str | UnsetType | None = UNSET
    metadata: dict | UnsetType | None = UNSET


class NewEndUser(EndUserParams, kw_only=True):
    user_id: str


class EndUserIds(msgspec.Struct, kw_only=True):
    user_ids: list[str]


def end_user_fields(values: dict[str, Any]) -> dict[str, Any]:
    check(values)
    values.pop("user_id", None)
    return record_values(values, EndUserRecord)


def seen_end_users(edge: Edge) -> list[str]:
    """End users requests named, stored or not (each has a spend ledger)."""
    out = []
    for key in edge.budgets.ledgers.items:
        if key.startswith(_LEDGER_PREFIX):
            encoded = key[len(_LEDGER_PREFIX) :]
            out.append(base64.urlsafe_b64decode(encoded[1:].encode()).decode())
    return out


def end_user_info(edge: Edge, record: EndUserRecord) -> dict[str, Any]:
    """LiteLLM's shape: the record, its spend (of the current budget period) and the limits that
    bound it (`litellm_budget_table`: its budget object's, or its own)."""
    budget = edge.identity.budget(record.budget_id)
    effective = bounded(record, budget)
    spend, reset_at = edge.budgets.period_spend(
        LedgerKind.END_USER, record.user_id, effective.budget_duration, effective.created_at
    )
    out = render(record)
    out["spend"] = spend
    out["budget_reset_at"] = iso(reset_at)
    if budget is not None:
        out["litellm_budget_table"] = render(budget)
    else:
        own = {name: getattr(record, name) for name in BOUNDING_FIELDS if getattr(record, name) is not None}
        out["litellm_budget_table"] = own or None
    return out


def build_end_user_routes(edge: Edge) -> list:
    store = RecordStore(edge)
    end_users = lambda: edge.identity.end_users  # noqa: E731 - the view exists once the edge started

    def find(user_id: str) -> EndUserRecord:
        record = edge.identity.end_user(user_id)
        if record is not None:
            return record
        if ledger_key(LedgerKind.END_USER, user_id) in edge.budgets.ledgers.items:
            return EndUserRecord(user_id=user_id)  # named by requests, never stored: no limits
        raise not_found(f"end user {user_id!r}")

    async def upsert(user_id: str, change: Callable[[EndUserRecord], EndUserRecord]) -> EndUserRecord:
        def apply(r: EndUserRecord | None) -> EndUserRecord:
            now = time.time()
            return change(r or EndUserRecord(user_id=user_id, created_at=now, updated_at=now))

        return await store.upsert(end_users(), end_user_key(user_id), apply, f"end user {user_id!r}")

    @post(["/end_user/new", "/customer/new"], status_code=200)
    async def new(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), NewEndUser)
        if not params.user_id:
            raise bad_param("user_id", "`user_id` (the end user's id, as requests send it in `user`) is required")
        values = given(params)
        known_budget(edge, values)
        now = time.time()
        record = EndUserRecord(user_id=params.user_id, created_at=now, updated_at=now, **end_user_fields(values))
        await store.create(end_users(), end_user_key(params.user_id), record, f"end user {params.user_id!r}")
        return json_response(end_user_info(edge, record))

    @get(["/end_user/info", "/customer/info"])
    async def info(request: Request, end_user_id: str | None = None) -> Response:
        viewer(edge, request)
        if not end_user_id:
            raise bad_param("end_user_id", "`end_user_id` is required")
        return json_response(end_user_info(edge, find(end_user_id)))

    @get(["/end_user/list", "/customer/list"])
    async def list_end_users(request: Request) -> Response:
        viewer(edge, request)
        stored = {r.user_id: r for r in end_users().items.values()}
        for user_id in seen_end_users(edge):
            stored.setdefault(user_id, EndUserRecord(user_id=user_id))
        records = sorted(stored.values(), key=lambda r: (r.created_at, r.user_id))
        return json_response([end_user_info(edge, r) for r in records])

    @post(["/end_user/update", "/customer/update"], status_code=200)
    async def update(request: Request) -> Response:
        """Change an end user; like LiteLLM, one that requests named but nobody stored is stored now."""
        admin(edge, request)
        params = decode_body(await request.body(), NewEndUser)
        find(params.user_id)
        values = given(params)
        known_budget(edge, values)
        fields = end_user_fields(values)
        record = await upsert(params.user_id, lambda r: msgspec.structs.replace(r, updated_at=time.time(), **fields))
        return json_response(end_user_info(edge, record))

    @post(["/end_user/delete", "/customer/delete"], status_code=200)
    async def delete(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), EndUserIds)
        for user_id in params.user_ids:
            if edge.identity.end_user(user_id) is None:
                raise not_found(f"end user {user_id!r}")
        for user_id in params.user_ids:
            await store.delete(end_users(), end_user_key(user_id))
        return json_response({"deleted_end_users": params.user_ids})

    async def set_blocked(request: Request, blocked: bool) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), EndUserIds)
        if not params.user_ids:
            raise bad_param("user_ids", "name at least one end user")
        records = []
        for user_id in params.user_ids:
            if not blocked:
                find(user_id)
            change = lambda r: r if r.blocked == blocked else msgspec.structs.replace(r, blocked=blocked, updated_at=time.time())  # noqa: E731
            records.append(await upsert(user_id, change))
        return json_response({"blocked_users" if blocked else "unblocked_users": [render(r) for r in records]})

    @post(["/end_user/block", "/customer/block"], status_code=200)
    async def block(request: Request) -> Response:
        """Refuse every request naming these end users (created when new, as LiteLLM does)."""
        return await set_blocked(request, True)

    @post(["/end_user/unblock", "/customer/unblock"], status_code=200)
    async def unblock(request: Request) -> Response:
        return await set_blocked(request, False)

    return [new, info, list_end_users, update, delete, block, unblock]
