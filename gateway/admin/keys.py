"""`/key/*`: virtual keys (seed 003's parameters and responses)."""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get, post
from msgspec import UNSET, UnsetType

from gateway.admin.common import admin, caller, iso, json_response, known_budget, render, viewer, with_spend
from gateway.admin.params import (
    LimitParams,
    apply_defaults,
    apply_upper_bounds,
    bad_param,
    check_non_negative,
    decode_body,
    expires_at,
    parse_duration,
    record_values,
)
from gateway.admin.self_service import own_key_values
from gateway.admin.store import RecordStore, not_found
from gateway.auth import forbidden
from gateway.edge import Edge
from gateway.enforced_params import fold_enforced_params
from llmgw.contracts import KeyRecord, LedgerKind
from llmgw.kv import WatchedMap
from llmgw.secrets import KEY_PREFIX, generate_key, key_name


class KeyParams(LimitParams, kw_only=True):
    """The settable fields of a key; UNSET tells "not given" apart from null."""

    duration: str | UnsetType | None = UNSET
    key_alias: str | UnsetType | None = UNSET
    team_id: str | UnsetType | None = UNSET
    user_id: str | UnsetType | None = UNSET
    models: list[str] | UnsetType | None = UNSET
    aliases: dict[str, str] | UnsetType | None = UNSET
    config: dict | UnsetType | None = UNSET
    spend: float | UnsetType | None = UNSET
    metadata: dict | UnsetType | None = UNSET
    permissions: dict | UnsetType | None = UNSET
    allowed_cache_controls: list[str] | UnsetType | None = UNSET
    system_prompt: str | UnsetType | None = UNSET
    blocked: bool | UnsetType | None = UNSET
    priority: Literal["interactive", "batch"] | UnsetType = UNSET
    enforced_params: list[str] | UnsetType | None = UNSET  # kept in metadata (gateway/enforced_params.py)


class KeyRef(msgspec.Struct, kw_only=True):
    key: str


class UpdateKeyParams(KeyParams, kw_only=True):
    key: str


class DeleteKeys(msgspec.Struct, kw_only=True):
    keys: list[str] = []
    key_aliases: list[str] = []


_RECORD_FIELDS = set(KeyRecord.__struct_fields__)


def given(params: msgspec.Struct) -> dict[str, Any]:
    return {f: getattr(params, f) for f in params.__struct_fields__ if getattr(params, f) is not UNSET}


def check(values: dict[str, Any]) -> None:
    check_non_negative(values)
    if values.get("duration") is not None:
        parse_duration(values["duration"], "duration")
    if values.get("budget_duration") is not None:
        parse_duration(values["budget_duration"], "budget_duration")
    for name in ("max_budget", "soft_budget", "spend"):
        v = values.get(name)
        if v is not None and not math.isfinite(v):
            raise bad_param(name, f"`{name}` must be a finite number")


def record_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Request values as KeyRecord fields; `duration` becomes `expires`."""
    out = record_values(values, KeyRecord)
    if "duration" in values:
        out["expires"] = expires_at(values["duration"])
    return out


def generated_response(key: str, record: KeyRecord, duration: str | None) -> dict[str, Any]:
    """Seed 003's /key/generate answer: the plaintext key (shown this once), its name, the rest."""
    return {
        **render(record),
        "key": key,
        "key_name": record.key_name,
        "expires": iso(record.expires),
        "token": record.token,
        "duration": duration,
    }


class KeyService:
    """Key operations shared by /key/*, /user/new and /team/delete."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.store = RecordStore(edge)

    @property
    def keys(self) -> WatchedMap[KeyRecord]:
        return self.edge.identity.keys

    def info(self, record: KeyRecord) -> dict[str, Any]:
        """A key as /key/info shows it: spend of the current budget period, from its ledger, and
        the budget object that bounds it (`litellm_budget_table`, LiteLLM's name)."""
        out = with_spend(self.edge, render(record), LedgerKind.KEY, record.token, record)
        budget = self.edge.identity.budget(record.budget_id)
        if budget is not None:
            out["litellm_budget_table"] = render(budget)
        return out

    def token_of(self, key: str) -> str:
        """Admin calls name a key by its plaintext (sk-...) or by its token (the stored hash)."""
        return self.edge.hasher.token(key) if key.startswith(KEY_PREFIX) else key

    def find(self, key: str) -> KeyRecord:
        record = self.keys.items.get(self.token_of(key))
        if record is None:
            raise not_found("key")
        return record

    def settings(self, name: str) -> dict[str, Any]:
        cfg = self.edge.settings.config
        return dict(cfg.litellm_settings.get(name) or cfg.general_settings.get(name) or {})

    def prepare(self, values: dict[str, Any]) -> dict[str, Any]:
        """The values of a new key: defaults and upper bounds applied, checked (400 naming a field)."""
        values = dict(values)
        apply_defaults(values, self.settings("default_key_generate_params"), set(values))
        apply_upper_bounds(values, self.settings("upperbound_key_generate_params"))
        check(values)
        return values

    async def generate(self, values: dict[str, Any]) -> tuple[str, KeyRecord, str | None]:
        values = self.prepare(values)
        key = generate_key()
        now = time.time()
        record = KeyRecord(
            token=self.edge.hasher.token(key),
            key_name=key_name(key),
            created_at=now,
            updated_at=now,
            **record_fields(values),
        )
        await self.store.create(self.keys, record.token, record, "key")
        return key, record, values.get("duration")

    async def update(self, token: str, values: dict[str, Any]) -> KeyRecord:
        check(values)
        fields = record_fields(values)
        return await self.store.modify(
            self.keys, token, lambda r: msgspec.structs.replace(r, updated_at=time.time(), **fields), "key"
        )

    async def delete(self, tokens: list[str]) -> None:
        for token in tokens:
            await self.store.delete(self.keys, token)

    def tokens_where(self, **match: str | None) -> list[str]:
        return [t for t, r in self.keys.items.items() if all(getattr(r, k) == v for k, v in match.items())]


def build_key_routes(edge: Edge, service: KeyService) -> list:
    @post("/key/generate", status_code=200)
    async def generate(request: Request) -> Response:
        principal = caller(edge, request)
        params = decode_body(await request.body(), KeyParams)
        values = given(params)
        if not principal.is_admin:  # an ordinary user's own key (gateway/admin/self_service.py)
            values = own_key_values(edge, principal, values)
        known_budget(edge, values)
        key, record, duration = await service.generate(fold_enforced_params(values, {}))
        return json_response(generated_response(key, record, duration))

    @get("/key/info")
    async def info(request: Request, key: str | None = None) -> Response:
        principal = caller(edge, request)
        if key is None:
            if principal.key is None:
                raise bad_param("key", "`key` is required")
            record = principal.key
        else:
            if not principal.views_all and (principal.key is None or principal.key.token != service.token_of(key)):
                raise forbidden("a key that is not an admin's can only look up itself", "key")
            record = service.find(key)
        return json_response({"key": key or record.key_name, "info": service.info(record)})

    @post("/key/update", status_code=200)
    async def update(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), UpdateKeyParams)
        values = given(params)
        values.pop("key")
        known_budget(edge, values)
        current = service.find(params.key)
        record = await service.update(current.token, fold_enforced_params(values, current.metadata))
        return json_response({"key": params.key, **service.info(record)})

    @post("/key/delete", status_code=200)
    async def delete(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), DeleteKeys)
        if not params.keys and not params.key_aliases:
            raise bad_param("keys", "give `keys` (or `key_aliases`) to delete")
        tokens = [service.find(k).token for k in params.keys]
        for alias in params.key_aliases:
            found = service.tokens_where(key_alias=alias)
            if not found:
                raise not_found(f"key with alias {alias!r}")
            tokens += found
        await service.delete(tokens)
        return json_response({"deleted_keys": params.keys + params.key_aliases})

    @get("/key/list")
    async def list_keys(
        request: Request,
        page: int = 1,
        size: int = 10,
        user_id: str | None = None,
        team_id: str | None = None,
        key_alias: str | None = None,
        return_full_object: bool = False,
    ) -> Response:
        viewer(edge, request)
        if page < 1:
            raise bad_param("page", f"`page` must be >= 1; got {page}")
        if not 1 <= size <= 1000:
            raise bad_param("size", f"`size` must be between 1 and 1000; got {size}")
        match = {k: v for k, v in (("user_id", user_id), ("team_id", team_id), ("key_alias", key_alias)) if v is not None}
        records = sorted(
            (r for r in service.keys.items.values() if all(getattr(r, k) == v for k, v in match.items())),
            key=lambda r: r.created_at,
        )
        chunk = records[(page - 1) * size : page * size]
        return json_response(
            {
                "keys": [service.info(r) if return_full_object else r.token for r in chunk],
                "total_count": len(records),
                "current_page": page,
                "total_pages": max(1, math.ceil(len(records) / size)),
            }
        )

    async def regenerate_key(request: Request, key: str) -> Response:
        admin(edge, request)
        old = service.find(key)
        overrides = given(decode_body(await request.body(), KeyParams)) if (await request.body()).strip() else {}
        values = {f: getattr(old, f) for f in KeyParams.__struct_fields__ if f in _RECORD_FIELDS}
        values.update(overrides)
        check(values)
        new_key = generate_key()
        now = time.time()
        fields = record_fields(values)
        fields.setdefault("expires", old.expires)
        record = msgspec.structs.replace(
            old, token=edge.hasher.token(new_key), key_name=key_name(new_key), updated_at=now, **fields
        )
        await service.store.create(service.keys, record.token, record, "key")
        await service.delete([old.token])
        return json_response(generated_response(new_key, record, values.get("duration")))

    @post("/key/regenerate", status_code=200)
    async def regenerate(request: Request) -> Response:
        return await regenerate_key(request, decode_body(await request.body(), KeyRef).key)

    @post("/key/{key:str}/regenerate", status_code=200)
    async def regenerate_by_path(request: Request, key: str) -> Response:
        return await regenerate_key(request, key)

    async def set_blocked(request: Request, blocked: bool) -> Response:
        admin(edge, request)
        ref = decode_body(await request.body(), KeyRef)
        record = await service.update(service.find(ref.key).token, {"blocked": blocked})
        return json_response(service.info(record))

    @post("/key/block", status_code=200)
    async def block(request: Request) -> Response:
        return await set_blocked(request, True)

    @post("/key/unblock", status_code=200)
    async def unblock(request: Request) -> Response:
        return await set_blocked(request, False)

    return [generate, info, update, delete, list_keys, regenerate, regenerate_by_path, block, unblock]
