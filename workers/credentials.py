"""Deployments as the worker calls them: the config file's and those added at run time
(`/model/new`, llmgw.runtime_models), with provider credentials set at run time (encrypted in the
settings bucket) swapped in as soon as the KV watch delivers them.

The table is one dict, rebuilt and swapped whole on every change: a request reads it without a
lookup anywhere else. Only a request naming a deployment the table does not hold yet (added a
moment ago, its record still on its way here) waits for the next change, briefly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
import structlog
from nats.js import JetStreamContext

from llmgw.config import Deployment, GatewayConfig, Secret
from llmgw.contracts import CREDENTIAL_PREFIX, CredentialRecord, Subjects
from llmgw.kv import WatchedMap, open_bucket
from llmgw.runtime_models import RuntimeModels, wait_until
from llmgw.secrets import CredentialCipher

log = structlog.get_logger()

UNKNOWN_DEPLOYMENT_WAIT = 2.0  # seconds a request for a deployment not known here waits for it


class DeploymentTable:
    def __init__(self, config: GatewayConfig, cipher: CredentialCipher) -> None:
        self.config = config
        self.cipher = cipher
        self.runtime = RuntimeModels(cipher)
        self.runtime.listeners.append(self._rebuild)
        self.overrides: dict[str, Secret] = {}  # deployment id -> credential set at run time
        self.table: dict[str, Deployment] = {d.id: d for d in config.deployments}
        self.listeners: list[Callable[[], None]] = []  # called after the table changed
        self._changed = asyncio.Event()
        self._watch: WatchedMap[CredentialRecord] | None = None

    def get(self, deployment_id: str) -> Deployment | None:
        return self.table.get(deployment_id)

    @property
    def providers(self) -> set[str]:
        return {d.provider for d in self.table.values()}

    async def wait_for(self, deployment_id: str, timeout: float = UNKNOWN_DEPLOYMENT_WAIT) -> Deployment | None:
        """The deployment, waiting up to `timeout` s for the table to learn it."""
        await wait_until(lambda: self._changed, lambda: deployment_id in self.table, timeout)
        return self.table.get(deployment_id)

    async def start(self, js: JetStreamContext, subjects: Subjects) -> None:
        kv = await open_bucket(js, subjects.settings_bucket)
        self._watch = WatchedMap(kv, msgspec.json.Decoder(CredentialRecord), "credentials", CREDENTIAL_PREFIX)
        self._watch.listeners.append(self._on_credential)
        await self._watch.start()
        await self.runtime.start(js, subjects)

    def _on_credential(self, _key: str, record: CredentialRecord | None) -> None:
        if record is None:
            return  # a removed override leaves the last credential in place until restart
        plaintext = self.cipher.decrypt(record.ciphertext)
        if plaintext is None:
            log.error("credential_undecryptable", deployment=record.deployment_id)
            return
        self.overrides[record.deployment_id] = Secret(plaintext)
        if record.deployment_id in self.table:
            log.info("credential_updated", deployment=record.deployment_id, api_key=record.masked)
        self._rebuild()

    def _rebuild(self) -> None:
        table = {d.id: d for d in self.config.deployments}
        for d in self.runtime.deployments.values():
            table.setdefault(d.id, d)  # (an id the config file has stays the config file's)
        for deployment_id, secret in self.overrides.items():
            base = table.get(deployment_id)
            if base is not None:
                table[deployment_id] = msgspec.structs.replace(base, api_key=secret)
        self.table = table
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        for listener in self.listeners:
            listener()

    async def stop(self) -> None:
        await self.runtime.stop()
        if self._watch is not None:
            await self._watch.stop()
