"""Deployments as the worker calls them: the config file's, with provider credentials set at run
time (encrypted in the settings bucket) swapped in as soon as the KV watch delivers them."""

from __future__ import annotations

import msgspec
import structlog
from nats.js import JetStreamContext

from llmgw.config import Deployment, GatewayConfig, Secret
from llmgw.contracts import CREDENTIAL_PREFIX, CredentialRecord, Subjects
from llmgw.kv import WatchedMap, open_bucket
from llmgw.secrets import CredentialCipher

log = structlog.get_logger()


class DeploymentTable:
    def __init__(self, config: GatewayConfig, cipher: CredentialCipher) -> None:
        self.config = config
        self.cipher = cipher
        self.table: dict[str, Deployment] = {d.id: d for d in config.deployments}
        self._watch: WatchedMap[CredentialRecord] | None = None

    def get(self, deployment_id: str) -> Deployment | None:
        return self.table.get(deployment_id)

    async def start(self, js: JetStreamContext, subjects: Subjects) -> None:
        kv = await open_bucket(js, subjects.settings_bucket)
        self._watch = WatchedMap(kv, msgspec.json.Decoder(CredentialRecord), "credentials", CREDENTIAL_PREFIX)
        self._watch.listeners.append(self._on_change)
        await self._watch.start()

    def _on_change(self, _key: str, record: CredentialRecord | None) -> None:
        if record is None:
            return  # a removed override leaves the last credential in place until restart
        base = self.config.deployment(record.deployment_id)
        if base is None:
            return
        plaintext = self.cipher.decrypt(record.ciphertext)
        if plaintext is None:
            log.error("credential_undecryptable", deployment=record.deployment_id)
            return
        self.table[base.id] = msgspec.structs.replace(base, api_key=Secret(plaintext))
        log.info("credential_updated", deployment=record.deployment_id, api_key=record.masked)

    async def stop(self) -> None:
        if self._watch is not None:
            await self._watch.stop()
