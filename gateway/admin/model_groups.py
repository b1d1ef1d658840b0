"""`GET /model_group/info`: the model groups a key may use, one entry each (LiteLLM's shape:
`model_group`, `providers`, prices per token where the config or the price table has them)."""

from __future__ import annotations

from litestar import Request, Response, get

from gateway.admin.common import caller, json_response
from gateway.edge import Edge
from llmgw.config import Deployment
from llmgw.prices import price_for


def _prices(deployments: list[Deployment]) -> dict[str, float | None]:
    """The group's prices per token (its first deployment with a known price: the config's, else
    the price table's), and its output limit."""
    for d in deployments:
        price = price_for(d, d.upstream_model)
        if price is not None:
            return {
                "input_cost_per_token": price.input,
                "output_cost_per_token": price.output,
                "max_output_tokens": price.max_output_tokens,
            }
    return {"input_cost_per_token": None, "output_cost_per_token": None, "max_output_tokens": None}


def build_model_group_routes(edge: Edge) -> list:
    @get(["/model_group/info", "/v1/model_group/info"])
    async def model_group_info(request: Request, model_group: str | None = None) -> Response:
        principal = caller(edge, request)
        groups: dict[str, list[Deployment]] = {}
        for d in edge.settings.config.deployments:
            if principal.views_all or edge.access.allows(principal, d.model_name):
                groups.setdefault(d.model_name, []).append(d)
        data = [
            {
                "model_group": name,
                "providers": sorted({d.provider for d in members}),
                "deployments": len(members),
                "access_groups": sorted({g for d in members for g in d.access_groups}),
                **_prices(members),
            }
            for name, members in sorted(groups.items())
            if model_group is None or name == model_group
        ]
        return json_response({"data": data})

    return [model_group_info]
