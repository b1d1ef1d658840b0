"""`/user/*`: users, their roles and budgets; `/user/new` also makes the user's first key."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from msgspec import UNSET, UnsetType

from gateway.admin.common import admin, json_response, render, with_spend
from gateway.admin.keys import KeyParams, KeyService, generated_response, given
from gateway.admin.params import bad_param, decode_body, record_values
from gateway.admin.store import not_found
from gateway.edge import Edge
from llmgw.contracts import USER_ROLES, LedgerKind, UserRecord, kv_key

# Fields /user/new and /user/update set on the user record (the rest of the body shapes the key).
USER_FIELDS = frozenset(
    (
        "user_email",
        "user_role",
        "teams",
        "models",
        "max_budget",
        "soft_budget",
        "model_max_budget",
        "max_parallel_requests",
        "tpm_limit",
        "rpm_limit",
        "budget_duration",
        "metadata",
        "spend",
        "allowed_cache_controls",
    )
)


class UserParams(KeyParams, kw_only=True):
    user_email: str | UnsetType | None = UNSET
    user_role: str | UnsetType | None = UNSET
    teams: list[str] | UnsetType | None = UNSET


class UpdateUserParams(UserParams, kw_only=True):
    user_id: str


class DeleteUsers(msgspec.Struct, kw_only=True):
    user_ids: list[str]


def user_fields(values: dict[str, Any]) -> dict[str, Any]:
    role = values.get("user_role")
    if role is not None and role not in USER_ROLES:
        raise bad_param("user_role", f"`user_role` must be one of {', '.join(USER_ROLES)}; got {role!r}")
    return record_values(values, UserRecord, USER_FIELDS)


def build_user_routes(edge: Edge, keys: KeyService) -> list:
    store = keys.store
    users = lambda: edge.identity.users  # noqa: E731 - the view exists once the edge started

    def find(user_id: str) -> UserRecord:
        record = edge.identity.user(user_id)
        if record is None:
            raise not_found(f"user {user_id!r}")
        return record

    def show(record: UserRecord) -> dict:
        return with_spend(edge, render(record), LedgerKind.USER, record.user_id, record)

    def user_keys(user_id: str) -> list[dict]:
        return [keys.info(keys.keys.items[t]) for t in keys.tokens_where(user_id=user_id)]

    @post("/user/new", status_code=200)
    async def new(request: Request) -> Response:
        admin(edge, request)
        values = given(decode_body(await request.body(), UserParams))
        user_id = values.get("user_id") or str(uuid.uuid4())
        now = time.time()
        record = UserRecord(user_id=user_id, created_at=now, updated_at=now, **user_fields(values))
        if values.get("team_id") and values["team_id"] not in record.teams:
            record = msgspec.structs.replace(record, teams=[*record.teams, values["team_id"]])
        # The user's key: the key parameters of the body (the user's models bound it too), without
        # the budget settings, which belong to the user. Checked before anything is stored.
        key_values = {
            k: v for k, v in values.items() if k in KeyParams.__struct_fields__ and (k not in USER_FIELDS or k == "models")
        }
        key_values["user_id"] = user_id
        keys.prepare(key_values)
        await store.create(users(), kv_key(user_id), record, f"user {user_id!r}")
        key, key_record, duration = await keys.generate(key_values)
        return json_response({**generated_response(key, key_record, duration), **render(record)})

    @get("/user/info")
    async def info(
        request: Request, user_id: str | None = None, view_all: bool = False, page: int = 0, page_size: int = 25
    ) -> Response:
        admin(edge, request)
        if view_all:
            if page < 0:
                raise bad_param("page", f"`page` must be >= 0; got {page}")
            if not 1 <= page_size <= 1000:
                raise bad_param("page_size", f"`page_size` must be between 1 and 1000; got {page_size}")
            records = sorted(users().items.values(), key=lambda r: r.created_at)
            chunk = records[page * page_size : (page + 1) * page_size]
            return json_response(
                {
                    "users": [show(r) for r in chunk],
                    "total_count": len(records),
                    "page": page,
                    "page_size": page_size,
                    "total_pages": max(1, math.ceil(len(records) / page_size)),
                }
            )
        if not user_id:
            raise bad_param("user_id", "give `user_id`, or `view_all=true`")
        record = find(user_id)
        teams = [render(t) for t in (edge.identity.team(tid) for tid in record.teams) if t is not None]
        return json_response({"user_id": user_id, "user_info": show(record), "keys": user_keys(user_id), "teams": teams})

    @post("/user/update", status_code=200)
    async def update(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), UpdateUserParams)
        fields = user_fields(given(params))
        record = await store.modify(
            users(),
            kv_key(params.user_id),
            lambda r: msgspec.structs.replace(r, updated_at=time.time(), **fields),
            f"user {params.user_id!r}",
        )
        return json_response({"user_id": params.user_id, "user_info": render(record)})

    @post("/user/delete", status_code=200)
    async def delete(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), DeleteUsers)
        for user_id in params.user_ids:
            find(user_id)
        for user_id in params.user_ids:
            # Cut the user off everywhere: their keys go with them.
            await keys.delete(keys.tokens_where(user_id=user_id))
            await store.delete(users(), kv_key(user_id))
        return json_response({"deleted_users": params.user_ids})

    return [new, info, update, delete]
