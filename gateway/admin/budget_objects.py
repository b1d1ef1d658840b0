"""`/budget/*`: budget objects (LiteLLM's budget table), limits that keys, teams and end users
naming their `budget_id` are bound by (gateway/budget_objects.py)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from msgspec import UNSET, UnsetType

from gateway.admin.common import admin, json_response, render, viewer
from gateway.admin.keys import check, given
from gateway.admin.params import LimitParams, bad_param, decode_body, record_values
from gateway.admin.store import RecordStore, not_found
from gateway.edge import Edge
from llmgw.contracts import BudgetRecord, budget_key


class BudgetParams(LimitParams, kw_only=True):
    budget_reset_at: float | UnsetType | None = UNSET


class BudgetIds(msgspec.Struct, kw_only=True):
    budgets: list[str]


class BudgetRef(msgspec.Struct, kw_only=True):
    id: str | None = None  # LiteLLM's name for it in /budget/delete
    budget_id: str | None = None


def holders_of(edge: Edge, budget_id: str) -> list[str]:
    """What names the budget object: `key sk-...`, `team t`, `user u`, `end user e`."""
    identity = edge.identity
    out = [f"key {k.key_name}" for k in identity.keys.items.values() if k.budget_id == budget_id]
    out += [f"team {t.team_id}" for t in identity.teams.items.values() if t.budget_id == budget_id]
    out += [
        f"user {m.user_id} in team {t.team_id}"
        for t in identity.teams.items.values()
        for m in t.members_with_roles
        if m.budget_id == budget_id
    ]
    out += [f"user {u.user_id}" for u in identity.users.items.values() if u.budget_id == budget_id]
    out += [f"end user {e.user_id}" for e in identity.end_users.items.values() if e.budget_id == budget_id]
    return out


def budget_fields(values: dict[str, Any]) -> dict[str, Any]:
    check(values)
    values.pop("budget_id", None)
    return record_values(values, BudgetRecord)


def build_budget_routes(edge: Edge) -> list:
    store = RecordStore(edge)
    budgets = lambda: edge.identity.budgets  # noqa: E731 - the view exists once the edge started

    def find(budget_id: str | None) -> BudgetRecord:
        if not budget_id:
            raise bad_param("budget_id", "`budget_id` is required")
        record = edge.identity.budget(budget_id)
        if record is None:
            raise not_found(f"budget {budget_id!r}")
        return record

    @post("/budget/new", status_code=200)
    async def new(request: Request) -> Response:
        principal = admin(edge, request)
        params = decode_body(await request.body(), BudgetParams)
        values = given(params)
        budget_id = values.get("budget_id") or str(uuid.uuid4())
        now = time.time()
        creator = principal.user.user_id if principal.user is not None else None
        record = BudgetRecord(budget_id=budget_id, created_by=creator, created_at=now, updated_at=now, **budget_fields(values))
        await store.create(budgets(), budget_key(budget_id), record, f"budget {budget_id!r}")
        return json_response(render(record))

    @post("/budget/update", status_code=200)
    async def update(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), BudgetParams)
        budget_id = params.budget_id if isinstance(params.budget_id, str) else None
        find(budget_id)
        fields = budget_fields(given(params))

        def change(r: BudgetRecord) -> BudgetRecord:
            return msgspec.structs.replace(r, updated_at=time.time(), **fields)

        record = await store.modify(budgets(), budget_key(budget_id or ""), change, f"budget {budget_id!r}")
        return json_response(render(record))

    @post("/budget/info", status_code=200)
    async def info(request: Request) -> Response:
        """LiteLLM's shape: `{"budgets": [ids]}` in, the budget objects out."""
        viewer(edge, request)
        params = decode_body(await request.body(), BudgetIds)
        return json_response([render(find(b)) for b in params.budgets])

    @get("/budget/info")
    async def info_get(request: Request, budget_id: str | None = None) -> Response:
        viewer(edge, request)
        return json_response(render(find(budget_id)))

    @get("/budget/list")
    async def list_budgets(request: Request) -> Response:
        viewer(edge, request)
        records = sorted(budgets().items.values(), key=lambda r: (r.created_at, r.budget_id or ""))
        return json_response([render(r) for r in records])

    @post("/budget/delete", status_code=200)
    async def delete(request: Request) -> Response:
        admin(edge, request)
        ref = decode_body(await request.body(), BudgetRef)
        budget_id = ref.id or ref.budget_id
        record = find(budget_id)
        assert record.budget_id is not None
        users = holders_of(edge, record.budget_id)
        if users:
            shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
            raise bad_param("id", f"budget {budget_id!r} bounds {shown}; give them another budget_id (or none) first")
        await store.delete(budgets(), budget_key(record.budget_id))
        return json_response(render(record))

    return [new, update, info, info_get, list_budgets, delete]
