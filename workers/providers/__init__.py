"""Provider adapters by family (see `llmgw.catalog` for which provider belongs to which)."""

from __future__ import annotations

from workers.http_client import UpstreamClient
from workers.providers.base import Provider
from workers.providers.openai_family import OpenAIFamily

FAMILIES: dict[str, type[Provider]] = {
    "openai": OpenAIFamily,
}


def build_providers(client: UpstreamClient, default_timeout: float, connect_timeout: float) -> dict[str, Provider]:
    return {name: cls(client, default_timeout, connect_timeout) for name, cls in FAMILIES.items()}
