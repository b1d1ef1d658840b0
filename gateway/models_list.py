"""What `GET /v1/models` lists: every model a client can name, wildcard groups' included.

- A concrete model group is listed by its name.
- A wildcard deployment (`llm/*`, `openai/*`, `*`) is listed by the names it stands for: the
  fixed list its config gives (`model_info.models`), or else, when it calls the provider's own
  API (its default base URL) with a pattern for the upstream model, the provider's models the
  shipped price table lists in its section, as clients name them through the pattern (`openai/*` lists
  `openai/gpt-4o`, ...). A wildcard in front of a self-hosted server without a list is not
  listed: nothing says what it serves.

`created` is when this edge loaded its configuration (OpenAI's is when a model was published,
which the gateway does not know), `owned_by` the provider.
"""

from __future__ import annotations

import time

import msgspec

from gateway.router import ModelRouter
from llmgw.catalog import PROVIDERS
from llmgw.config import Deployment
from llmgw.prices import load_table


class ListedModel(msgspec.Struct, frozen=True):
    id: str
    owned_by: str
    created: int
    object: str = "model"


def calls_vendor_api(deployment: Deployment) -> bool:
    default = PROVIDERS[deployment.provider].api_base
    return default is not None and (deployment.api_base or default).rstrip("/") == default.rstrip("/")


def known_models(provider: str) -> list[str]:
    """The provider's models the price table knows (dated snapshots included): its own section's
    and those of the sections it is priced as (Vertex AI serves Gemini's and Claude's)."""
    table = load_table()
    names = set(table.sections.get(provider, {}))
    for other in table.prices_of.get(provider, ()):
        names.update(table.sections.get(other, {}))
    return sorted(names)


def client_name(deployment: Deployment, upstream: str) -> str | None:
    """The name a client asks for to reach `upstream` through the deployment's patterns."""
    prefix, star, suffix = deployment.upstream_model.partition("*")
    if not star or not (upstream.startswith(prefix) and upstream.endswith(suffix)) or len(upstream) <= len(prefix + suffix):
        return None
    return deployment.model_name.replace("*", upstream[len(prefix) : len(upstream) - len(suffix)], 1)


def wildcard_members(deployment: Deployment) -> list[str]:
    if deployment.listed_models:
        return list(deployment.listed_models)
    if not calls_vendor_api(deployment):
        return []
    names = (client_name(deployment, m) for m in known_models(deployment.provider))
    return [n for n in names if n is not None]


class ModelListing:
    """Built once from the router's groups; `created` is the time it was built."""

    def __init__(self, router: ModelRouter, created: float | None = None) -> None:
        self.created = int(created if created is not None else time.time())
        found: dict[str, ListedModel] = {}
        for name, provider in router.model_names():
            found[name] = ListedModel(name, provider, self.created)
        for deployment in router.wildcards:  # (most specific pattern first: it serves the name)
            for name in wildcard_members(deployment):
                found.setdefault(name, ListedModel(name, deployment.provider, self.created))
        self.models = sorted(found.values(), key=lambda m: m.id)
