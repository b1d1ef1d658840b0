"""Settings changed at run time: provider credentials (seed 002's "set the LLM key") and the
system prompt policy. Credentials are stored encrypted and only ever shown masked."""

from __future__ import annotations

import time

import msgspec
from litestar import Request, Response, get, post
from msgspec import UNSET, UnsetType
from nats.js.kv import KeyValue

from gateway.admin.common import admin, iso, json_response
from gateway.admin.keys import KeyService
from gateway.admin.params import bad_param, decode_body
from gateway.admin.store import not_found
from gateway.edge import Edge
from llmgw.contracts import POLICY_KEY, CredentialRecord, PolicyRecord, credential_key, kv_key
from llmgw.kv import WatchedMap, open_bucket
from llmgw.secrets import mask

_encoder = msgspec.json.Encoder()
_credential_decoder = msgspec.json.Decoder(CredentialRecord)


class SetCredential(msgspec.Struct, kw_only=True):
    api_key: str
    deployment_id: str | None = None
    model_name: str | None = None


class SetSystemPrompt(msgspec.Struct, kw_only=True):
    system_prompt: str | None
    team_id: str | UnsetType | None = UNSET
    key: str | UnsetType | None = UNSET


def build_settings_routes(edge: Edge, keys: KeyService) -> list:
    store = keys.store

    async def credentials_bucket() -> KeyValue:
        return await open_bucket(edge.js, edge.subjects.settings_bucket)

    @post("/credentials/set", status_code=200)
    async def set_credential(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), SetCredential)
        if not params.api_key.strip():
            raise bad_param("api_key", "`api_key` must not be empty")
        deployments = [
            d
            for d in edge.deployments()
            if d.id == params.deployment_id or (params.model_name is not None and d.model_name == params.model_name)
        ]
        if params.deployment_id is None and params.model_name is None:
            raise bad_param("deployment_id", "give `deployment_id` or `model_name`")
        if not deployments:
            raise not_found("deployment")
        kv = await credentials_bucket()
        masked = mask(params.api_key)
        for d in deployments:
            record = CredentialRecord(
                deployment_id=d.id, ciphertext=edge.cipher.encrypt(params.api_key), masked=masked, updated_at=time.time()
            )
            await kv.put(credential_key(d.id), _encoder.encode(record))
        return json_response({"updated": [d.id for d in deployments], "api_key": masked})

    @get("/credentials")
    async def list_credentials(request: Request) -> Response:
        admin(edge, request)
        kv = await credentials_bucket()
        stored: dict[str, CredentialRecord] = {}
        for d in edge.deployments():
            try:
                entry = await kv.get(credential_key(d.id))
            except Exception:
                continue
            stored[d.id] = _credential_decoder.decode(entry.value or b"")
        rows = []
        for d in edge.deployments():
            record = stored.get(d.id)
            rows.append(
                {
                    "deployment_id": d.id,
                    "model_name": d.model_name,
                    "source": "runtime" if record else ("config" if d.api_key else "none"),
                    "api_key": record.masked if record else (d.api_key.masked() if d.api_key else None),
                    "updated_at": iso(record.updated_at) if record else None,
                }
            )
        return json_response({"data": rows})

    @post("/policy/system_prompt", status_code=200)
    async def set_system_prompt(request: Request) -> Response:
        admin(edge, request)
        params = decode_body(await request.body(), SetSystemPrompt)
        prompt = params.system_prompt or None
        if params.key not in (UNSET, None):
            await keys.update(keys.find(params.key).token, {"system_prompt": prompt})
            return json_response({"key": params.key, "system_prompt": prompt})
        if params.team_id not in (UNSET, None):
            team_id = params.team_id
            if edge.identity.team(team_id) is None:
                raise not_found(f"team {team_id!r}")
            await store.modify(
                edge.identity.teams,
                kv_key(team_id),
                lambda r: msgspec.structs.replace(r, system_prompt=prompt, updated_at=time.time()),
                f"team {team_id!r}",
            )
            return json_response({"team_id": team_id, "system_prompt": prompt})
        policies: WatchedMap[PolicyRecord] = edge.identity.policies
        revision = await policies.kv.put(POLICY_KEY, _encoder.encode(PolicyRecord(system_prompt=prompt, updated_at=time.time())))
        await policies.caught_up(POLICY_KEY, revision)
        return json_response({"system_prompt": prompt})

    @get("/policy/system_prompt")
    async def get_system_prompt(request: Request) -> Response:
        admin(edge, request)
        return json_response({"system_prompt": edge.identity.global_system_prompt()})

    return [set_credential, list_credentials, set_system_prompt, get_system_prompt]
