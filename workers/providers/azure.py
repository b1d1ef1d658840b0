"""Azure OpenAI: the OpenAI wire format at per-deployment URLs.

Reference: https://learn.microsoft.com/en-us/azure/ai-services/openai/reference (chat completions,
completions, embeddings and image generations at {endpoint}/openai/deployments/{deployment-id}/..., the required `api-version`
query parameter, and the `api-key` header). The request and answer bodies are OpenAI's, so
everything but the URL and the credential header is OpenAIFamily's.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from llmgw.config import Deployment
from llmgw.contracts import UpstreamRequest
from workers.providers.answers import Completion
from workers.providers.openai_family import OpenAIFamily
from workers.providers.request_body import RequestBody

DEFAULT_API_VERSION = "2024-10-21"  # the current GA version of the data-plane API


class AzureOpenAI(OpenAIFamily):
    def url(self, deployment: Deployment, path: str) -> str:
        """`path` is `<azure deployment>/<operation>` (see `_request`)."""
        # (str(): YAML reads an unquoted `api_version: 2024-10-21` as a date)
        version = str(deployment.api_version or DEFAULT_API_VERSION)
        return f"{(deployment.api_base or '').rstrip('/')}/openai/deployments/{path}?api-version={quote(version, safe='')}"

    def headers(self, deployment: Deployment) -> dict[str, str]:
        headers = {"content-type": "application/json", **dict(deployment.extra_headers)}
        if deployment.api_key is not None:
            headers["api-key"] = deployment.api_key.reveal()
        return headers

    def _request(
        self, deployment: Deployment, request: UpstreamRequest, path: str, body: bytes, upstream_model: str
    ) -> httpx.Request:
        # The Azure deployment (the upstream model) is part of the URL, but OpenAIFamily builds
        # URLs from the deployment and operation only, so the model goes in front of the path
        # (which also keys OpenAIFamily's URL cache by it).
        return super()._request(deployment, request, f"{quote(upstream_model, safe='')}/{path}", body, upstream_model)

    # ---- native passthrough: /azure/openai/deployments/... -------------------------------------

    def native_root(self, deployment: Deployment, upstream_model: str) -> str:
        return deployment.base_for(upstream_model).rstrip("/")

    def native_headers(self, deployment: Deployment) -> dict[str, str]:
        return {"api-key": deployment.api_key.reveal()} if deployment.api_key is not None else {}

    # ---- what Azure OpenAI does not serve at a deployment URL ---------------------------------

    async def moderations(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        raise self.unsupported(deployment, "moderations (Azure AI Content Safety is a service of its own)")

    async def rerank(
        self, deployment: Deployment, request: UpstreamRequest, upstream_model: str, body: RequestBody | None = None
    ) -> Completion:
        raise self.unsupported(deployment, "rerank")
