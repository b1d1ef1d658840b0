"""Deployments added at run time (`/model/new`, LiteLLM's `store_model_in_db`).

Each is a `ModelRecord` in the settings bucket under `model.<id>`, its secret parameters sealed
with the credential cipher. Every edge and every worker keeps `RuntimeModels`, a KV watch that
turns the records into `Deployment`s (the config file's parser, so a stored model takes exactly
what a `model_list` entry takes) and tells its listeners, which swap their tables at once: a
request never waits on a lookup for them.

`os.environ/NAME` values are resolved in each process from its own environment, as in the config
file; a record a process cannot use (a variable it lacks, a secret it cannot decrypt) is logged
and left out there, never half applied.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog
from nats.js import JetStreamContext

from llmgw.config import ConfigError, Deployment, is_secret_param, parse_deployment
from llmgw.contracts import MODEL_PREFIX, ModelRecord, Subjects
from llmgw.kv import WatchedMap, open_bucket
from llmgw.secrets import CredentialCipher, mask

log = structlog.get_logger()

_CONFIG_WHERE = "model_list[0]."


def seal_params(params: Mapping[str, Any], cipher: CredentialCipher) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """`litellm_params` split into (plain parameters, sealed secrets, masked secrets)."""
    plain: dict[str, Any] = {}
    sealed: dict[str, str] = {}
    masked: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if is_secret_param(name):
            text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
            sealed[name] = cipher.encrypt(text)
            masked[name] = text if text.startswith("os.environ/") else mask(text)
        else:
            plain[name] = value
    return plain, sealed, masked


def shown_params(record: ModelRecord) -> dict[str, Any]:
    """A record's `litellm_params` as answers show them: secrets masked."""
    return {**record.litellm_params, **record.masked}


def config_problem(exc: ConfigError) -> str:
    """A config parser's message about a stored model, in the API's terms (`litellm_params.x`)."""
    return str(exc).replace(_CONFIG_WHERE + "params.", "litellm_params.").replace(_CONFIG_WHERE, "")


def open_record(record: ModelRecord, cipher: CredentialCipher, env: Mapping[str, str] | None = None) -> Deployment:
    """The Deployment a record describes; ConfigError when it cannot be used here."""
    params: dict[str, Any] = dict(record.litellm_params)
    for name, token in record.sealed.items():
        plaintext = cipher.decrypt(token)
        if plaintext is None:
            raise ConfigError(f"litellm_params.{name}: sealed under another LLMGW_SECRET_KEY")
        params[name] = plaintext
    entry = {
        "model_name": record.model_name,
        "litellm_params": params,
        "model_info": {**record.model_info, "id": record.model_id},
    }
    return parse_deployment(0, entry, os.environ if env is None else env)


class RuntimeModels:
    """The deployments of the `model.` records, kept current by a watch; `listeners` are called
    (with no arguments) after every change."""

    def __init__(self, cipher: CredentialCipher, env: Mapping[str, str] | None = None) -> None:
        self.cipher = cipher
        self.env = env
        self.deployments: dict[str, Deployment] = {}  # model id -> deployment
        self.records: dict[str, ModelRecord] = {}  # model id -> record
        self._ids: dict[str, str] = {}  # KV key -> model id
        self.listeners: list[Callable[[], None]] = []
        self.watch: WatchedMap[ModelRecord] | None = None

    async def start(self, js: JetStreamContext, subjects: Subjects) -> None:
        kv = await open_bucket(js, subjects.settings_bucket)
        self.watch = WatchedMap(kv, msgspec.json.Decoder(ModelRecord), "models", MODEL_PREFIX)
        self.watch.listeners.append(self._on_change)
        await self.watch.start()

    def _on_change(self, key: str, record: ModelRecord | None) -> None:
        old = self._ids.pop(key, None)
        if old is not None:
            self.deployments.pop(old, None)
            self.records.pop(old, None)
        if record is not None:
            self._ids[key] = record.model_id
            self.records[record.model_id] = record
            try:
                self.deployments[record.model_id] = open_record(record, self.cipher, self.env)
            except ConfigError as exc:
                log.error("runtime_model_unusable", model_id=record.model_id, error=config_problem(exc))
            else:
                log.info("runtime_model_applied", model_id=record.model_id, model_name=record.model_name)
        elif old is not None:
            log.info("runtime_model_removed", model_id=old)
        for listener in self.listeners:
            listener()

    async def caught_up(self, key: str, revision: int, timeout: float = 5.0) -> None:
        assert self.watch is not None, "RuntimeModels.start() first"
        await self.watch.caught_up(key, revision, timeout)

    async def stop(self) -> None:
        if self.watch is not None:
            await self.watch.stop()


async def wait_until(event_source: Callable[[], asyncio.Event], done: Callable[[], bool], timeout: float) -> bool:
    """Wait (at most `timeout` s) until `done()`, re-checking each time the event source fires."""
    try:
        async with asyncio.timeout(timeout):
            while not done():
                await event_source().wait()
    except TimeoutError:
        return done()
    return True
