"""`/user/*`: users, their roles and budgets; `/user/new` also makes the user's first key."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from msgspec import UNSET, UnsetType

from gateway.admin.common import admin, caller, json_response, render, viewer, with_spend
from gateway.admin.keys import KeyParams, KeyService, generated_response, given
from gateway.admin.params import bad_param, decode_body, record_values
from gateway.admin.store import not_found
from gateway.auth import Principal, forbidden
from gateway.edge import Edge
from llmgw.contracts import USER_ROLES, KeyRecord, LedgerKind, UserRecord, canonical_role, kv_key

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


class NewUserParams(UserParams, kw_only=True):
    auto_create_key: bool = True  # LiteLLM's: /user/new makes the user's first key unless false


class UpdateUserParams(UserParams, kw_only=True):
    user_id: str


class DeleteUsers(msgspec.Struct, kw_only=True):
    user_ids: list[str]


def user_fields(values: dict[str, Any]) -> dict[str, Any]:
    role = values.get("user_role")
    if role is not None and role not in USER_ROLES:
        raise bad_param("user_role", f"`user_role` must be one of {', '.join(USER_ROLES)}; got {role!r}")
    return record_values(values, UserRecord, USER_FIELDS)


async def create_user(
    edge: Edge, keys: KeyService, values: dict[str, Any]
) -> tuple[UserRecord, tuple[str, KeyRecord, str | None] | None]:
    """A new user (409 when the id is taken) and, unless `auto_create_key` is false, its first key
    (its plaintext, record and duration): what /user/new does, and single sign-on on a first login."""
    user_id = values.get("user_id") or str(uuid.uuid4())
    now = time.time()
    record = UserRecord(user_id=user_id, created_at=now, updated_at=now, **user_fields(values))
    if values.get("team_id") and values["team_id"] not in record.teams:
        record = msgspec.structs.replace(record, teams=[*record.teams, values["team_id"]])
    if not values.get("auto_create_key", True):
        await keys.store.create(edge.identity.users, kv_key(user_id), record, f"user {user_id!r}")
        return record, None
    # The user's key: the key parameters of the body (the user's models bound it too), without
    # the budget settings, which belong to the user. Checked before anything is stored.
    key_values = {k: v for k, v in values.items() if k in KeyParams.__struct_fields__ and (k not in USER_FIELDS or k == "models")}
    key_values["user_id"] = user_id
    keys.prepare(key_values)
    await keys.store.create(edge.identity.users, kv_key(user_id), record, f"user {user_id!r}")
    return record, await keys.generate(key_values)


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

    def readable_user(principal: Principal, user_id: str | None) -> str:
        """The user a caller asks about: any user for a reader of every record, else only the
        key's (or console session's) own user (no `user_id` means it); another user's record is 403."""
        if principal.views_all:
            if not user_id:
                raise bad_param("user_id", "give `user_id`, or `view_all=true`")
            return user_id
        own = principal.caller.user_id  # (a key's user, a session's person; none for the master key)
        if not user_id:
            if not own:
                raise not_found("a user of this key")
            return own
        if user_id != own:
            raise forbidden("a key that is not an admin's can only look up its own user", "user_id")
        return user_id

    def page_of(records: list[UserRecord], page: int, page_size: int, first_page: int) -> list[UserRecord]:
        if page < first_page:
            raise bad_param("page", f"`page` must be >= {first_page}; got {page}")
        if not 1 <= page_size <= 1000:
            raise bad_param("page_size", f"`page_size` must be between 1 and 1000; got {page_size}")
        start = (page - first_page) * page_size
        return records[start : start + page_size]

    @post("/user/new", status_code=200)
    async def new(request: Request) -> Response:
        admin(edge, request)
        values = given(decode_body(await request.body(), NewUserParams))
        record, made = await create_user(edge, keys, values)
        if made is None:
            return json_response({**render(record), "key": None})
        key, key_record, duration = made
        return json_response({**generated_response(key, key_record, duration), **render(record)})

    @get("/user/info")
    async def info(
        request: Request, user_id: str | None = None, view_all: bool = False, page: int = 0, page_size: int = 25
    ) -> Response:
        principal = caller(edge, request)
        if view_all:
            if not principal.views_all:
                raise forbidden("only admins and admin viewers may list every user", "view_all")
            records = sorted(users().items.values(), key=lambda r: r.created_at)
            chunk = page_of(records, page, page_size, 0)
            return json_response(
                {
                    "users": [show(r) for r in chunk],
                    "total_count": len(records),
                    "page": page,
                    "page_size": page_size,
                    "total_pages": max(1, math.ceil(len(records) / page_size)),
                }
            )
        user_id = readable_user(principal, user_id)
        record = find(user_id)
        teams = [render(t) for t in (edge.identity.team(tid) for tid in record.teams) if t is not None]
        return json_response({"user_id": user_id, "user_info": show(record), "keys": user_keys(user_id), "teams": teams})

    @get("/user/list")
    async def list_users(
        request: Request,
        page: int = 1,
        page_size: int = 25,
        role: str | None = None,
        user_ids: str | None = None,
        team: str | None = None,
    ) -> Response:
        viewer(edge, request)
        wanted = {u.strip() for u in user_ids.split(",") if u.strip()} if user_ids else None
        records = sorted(
            (
                r
                for r in users().items.values()
                if (role is None or canonical_role(r.user_role) == canonical_role(role))
                and (wanted is None or r.user_id in wanted)
                and (team is None or team in r.teams)
            ),
            key=lambda r: r.created_at,
        )
        chunk = page_of(records, page, page_size, 1)
        return json_response(
            {
                "users": [show(r) for r in chunk],
                "total": len(records),
                "page": page,
                "page_size": page_size,
                "total_pages": max(1, math.ceil(len(records) / page_size)),
            }
        )

    @post("/user/update", status_code=200)
    async def update(request: Request) -> Response:
        """Change a user; one that does not exist is created with these values (as LiteLLM does)."""
        admin(edge, request)
        params = decode_body(await request.body(), UpdateUserParams)
        fields = user_fields(given(params))

        def change(current: UserRecord | None) -> UserRecord:
            now = time.time()
            if current is None:
                return UserRecord(user_id=params.user_id, created_at=now, updated_at=now, **fields)
            return msgspec.structs.replace(current, updated_at=now, **fields)

        record = await store.upsert(users(), kv_key(params.user_id), change, f"user {params.user_id!r}")
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

    return [new, info, list_users, update, delete]
