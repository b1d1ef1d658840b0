"""Provider adapters by family (see `llmgw.catalog` for which provider belongs to which).

Families are imported when a worker serves one of their deployments, so a worker loads only the
adapters its configuration needs (and importing one module of this package loads no other).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.http_client import UpstreamClient
    from workers.providers.base import Provider

FAMILIES: dict[str, str] = {
    "openai": "workers.providers.openai_family:OpenAIFamily",
    "azure": "workers.providers.azure:AzureOpenAI",
    "anthropic": "workers.providers.anthropic:Anthropic",
    "gemini": "workers.providers.gemini:Gemini",
    "vertex_ai": "workers.providers.gemini:VertexAI",
    "cohere": "workers.providers.cohere:Cohere",
    "huggingface_inference": "workers.providers.huggingface:HuggingFaceInference",
    "vectara": "workers.providers.vectara:Vectara",
    "bedrock": "workers.providers.bedrock:Bedrock",
}


def family_class(family: str) -> type[Provider]:
    module, _, name = FAMILIES[family].partition(":")
    cls: type[Provider] = getattr(import_module(module), name)
    return cls


def build_providers(
    client: UpstreamClient, default_timeout: float, connect_timeout: float, families: Iterable[str] | None = None
) -> dict[str, Provider]:
    wanted = FAMILIES if families is None else set(families)
    return {name: family_class(name)(client, default_timeout, connect_timeout) for name in wanted}
