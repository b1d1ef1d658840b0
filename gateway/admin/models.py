"""Models at run time, as LiteLLM's proxy manages them with `store_model_in_db`:
`/model/new`, `/model/update` (and `PATCH /model/{id}/update`), `/model/delete`, `/model/info`.

An added deployment is a ModelRecord in the settings bucket (llmgw.runtime_models): its secret
parameters encrypted, the rest as given. Every edge and worker applies it from its KV watch, so
it is served everywhere without a restart; this edge waits for its own copy before answering, so
the next request here already finds it. Models of the config file are listed by `/model/info`
and cannot be changed or deleted here (LiteLLM answers the same for them: they are not in its
database); change the file instead.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, get, patch, post
from msgspec import UNSET, UnsetType
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError

from gateway.admin.common import caller, iso, json_response
from gateway.admin.params import bad_param, decode_body
from gateway.admin.store import not_found
from gateway.auth import Principal
from gateway.edge import Edge
from gateway.errors import GatewayError
from llmgw.config import ConfigError, Deployment
from llmgw.contracts import ErrorCode, ErrorType, ModelRecord, credential_key, model_key
from llmgw.kv import delete_key
from llmgw.runtime_models import config_problem, open_record, seal_params, shown_params

_encoder = msgspec.json.Encoder()
CAS_ATTEMPTS = 10


class NewModel(msgspec.Struct, kw_only=True):
    model_name: str
    litellm_params: dict[str, Any]
    model_info: dict[str, Any] = {}


class ModelUpdate(msgspec.Struct, kw_only=True):
    model_name: str | UnsetType = UNSET
    litellm_params: dict[str, Any] | UnsetType = UNSET  # merged into the stored ones; null removes one
    model_info: dict[str, Any] | UnsetType = UNSET


class ModelDelete(msgspec.Struct, kw_only=True):
    id: str


def admin_only(edge: Edge, request: Request) -> Principal:
    """Model writes are the proxy admin's: any other valid key is refused with 403."""
    principal = caller(edge, request)
    if not principal.is_admin:
        raise GatewayError(
            403,
            "Only a proxy admin (the master key, or a key of a user with role `proxy_admin`) may change models.",
            ErrorType.PERMISSION,
            ErrorCode.PERMISSION_DENIED,
        )
    return principal


def _checked(edge: Edge, record: ModelRecord) -> Deployment:
    """The deployment a record makes here; 400 naming the parameter when it cannot be used."""
    if not record.model_name.strip():
        raise bad_param("model_name", "`model_name` must not be empty")
    if not isinstance(record.litellm_params.get("model"), str) or not record.litellm_params["model"]:
        raise bad_param("litellm_params.model", "`litellm_params.model` is required, such as `openai/gpt-4o`")
    try:
        return open_record(record, edge.cipher)
    except ConfigError as exc:
        raise bad_param("litellm_params", config_problem(exc)) from None


def _render_config(d: Deployment) -> dict[str, Any]:
    params: dict[str, Any] = {"model": f"{d.provider}/{d.upstream_model}", "api_base": d.api_base}
    params["api_key"] = d.api_key.masked() if d.api_key else None
    if d.api_version:
        params["api_version"] = d.api_version
    return {
        "model_name": d.model_name,
        "litellm_params": params,
        "model_info": {**_prices(d), "id": d.id, "db_model": False, "access_groups": list(d.access_groups)},
    }


def _prices(d: Deployment) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if d.input_cost_per_token is not None:
        out["input_cost_per_token"] = d.input_cost_per_token
    if d.output_cost_per_token is not None:
        out["output_cost_per_token"] = d.output_cost_per_token
    return out


def _render_record(record: ModelRecord) -> dict[str, Any]:
    return {
        "model_id": record.model_id,
        "model_name": record.model_name,
        "litellm_params": shown_params(record),
        "model_info": {**record.model_info, "id": record.model_id, "db_model": True},
        "created_by": record.created_by,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }


def _for_caller(entry: dict[str, Any]) -> dict[str, Any]:
    """What a key that is not an admin's sees of a model it may use: no upstream address or key."""
    params = entry["litellm_params"]
    return {**entry, "litellm_params": {"model": params.get("model")}}


def build_model_routes(edge: Edge) -> list:
    runtime = edge.runtime_models

    def kv() -> Any:
        assert runtime.watch is not None, "the edge has started"
        return runtime.watch.kv

    def config_ids() -> set[str]:
        return {d.id for d in edge.settings.config.deployments}

    def refuse_config_model(model_id: str, action: str) -> None:
        if model_id in config_ids():
            raise bad_param(
                "id", f"Model {model_id!r} comes from the config file and cannot be {action} at run time; change the file"
            )

    async def forget_credential(model_id: str) -> None:
        """A credential once set with /credentials/set no longer outranks the model's own."""
        try:
            await kv().delete(credential_key(model_id))
        except (KeyNotFoundError, KeyDeletedError):
            pass

    @post("/model/new", status_code=200)
    async def new_model(request: Request) -> Response:
        principal = admin_only(edge, request)
        params = decode_body(await request.body(), NewModel)
        model_id = str(params.model_info.get("id") or uuid.uuid4())
        if model_id in config_ids() or model_id in runtime.records:
            raise bad_param("model_info.id", f"a model with id {model_id!r} already exists")
        plain, sealed, masked = seal_params(params.litellm_params, edge.cipher)
        now = time.time()
        record = ModelRecord(
            model_id=model_id,
            model_name=params.model_name,
            litellm_params=plain,
            sealed=sealed,
            masked=masked,
            model_info={k: v for k, v in params.model_info.items() if k != "id"},
            created_by=principal.caller.user_id or principal.caller.key_alias,
            created_at=now,
            updated_at=now,
        )
        _checked(edge, record)
        key = model_key(model_id)
        try:
            revision = await kv().create(key, _encoder.encode(record))
        except KeyWrongLastSequenceError:
            raise bad_param("model_info.id", f"a model with id {model_id!r} already exists") from None
        await runtime.caught_up(key, revision)
        return json_response(_render_record(record))

    async def update(request: Request, model_id: str | None) -> Response:
        admin_only(edge, request)
        params = decode_body(await request.body(), ModelUpdate)
        info = params.model_info if not isinstance(params.model_info, UnsetType) else {}
        model_id = model_id or (str(info["id"]) if info.get("id") else None)
        if not model_id:
            raise bad_param("model_info.id", "give the model's id in `model_info.id`")
        refuse_config_model(model_id, "updated")
        key = model_key(model_id)
        for _ in range(CAS_ATTEMPTS):
            try:
                entry = await kv().get(key)
            except (KeyNotFoundError, KeyDeletedError):
                raise not_found(f"model {model_id!r}") from None
            old = msgspec.json.decode(entry.value or b"", type=ModelRecord)
            plain, sealed, masked = dict(old.litellm_params), dict(old.sealed), dict(old.masked)
            given = params.litellm_params if not isinstance(params.litellm_params, UnsetType) else {}
            for name in given:
                for held in (plain, sealed, masked):
                    held.pop(name, None)
            new_plain, new_sealed, new_masked = seal_params(given, edge.cipher)
            record = msgspec.structs.replace(
                old,
                model_name=old.model_name if isinstance(params.model_name, UnsetType) else params.model_name,
                litellm_params={**plain, **new_plain},
                sealed={**sealed, **new_sealed},
                masked={**masked, **new_masked},
                model_info={**old.model_info, **{k: v for k, v in info.items() if k != "id"}},
                updated_at=time.time(),
            )
            _checked(edge, record)
            try:
                revision = await kv().update(key, _encoder.encode(record), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            if "api_key" in given:
                await forget_credential(model_id)
            await runtime.caught_up(key, revision)
            return json_response(_render_record(record))
        raise GatewayError(409, f"model {model_id!r} is being changed concurrently; retry", ErrorType.INVALID_REQUEST, "conflict")

    @post("/model/update", status_code=200)
    async def update_model(request: Request) -> Response:
        return await update(request, None)

    @patch("/model/{model_id:str}/update", status_code=200)
    async def patch_model(request: Request, model_id: str) -> Response:
        return await update(request, model_id)

    @post("/model/delete", status_code=200)
    async def delete_model(request: Request) -> Response:
        admin_only(edge, request)
        params = decode_body(await request.body(), ModelDelete)
        refuse_config_model(params.id, "deleted")
        if params.id not in runtime.records:
            raise not_found(f"model {params.id!r}")
        key = model_key(params.id)
        assert runtime.watch is not None
        revision = await delete_key(edge.js, runtime.watch.bucket, key)
        await forget_credential(params.id)
        await runtime.caught_up(key, revision)
        return json_response({"message": f"Model: {params.id} deleted successfully"})

    @get(["/model/info", "/v1/model/info"])
    async def model_info(request: Request) -> Response:
        principal = caller(edge, request)
        wanted = request.query_params.get("litellm_model_id")
        data: list[dict[str, Any]] = []
        for d in edge.deployments():
            if wanted is not None and d.id != wanted:
                continue
            if not principal.views_all and not edge.access.allows(principal, d.model_name):
                continue
            record = runtime.records.get(d.id)
            entry = _render_record(record) if record is not None and d.id not in config_ids() else _render_config(d)
            entry["model_info"] = {**_prices(d), **entry["model_info"]}
            data.append(entry if principal.views_all else _for_caller(entry))
        if wanted is not None and not data:
            raise not_found(f"model {wanted!r}")
        return json_response({"data": data})

    return [new_model, update_model, patch_model, delete_model, model_info]
