"""Liveness and readiness probes: llmgw's own (`/health/live`, `/health/ready`) and LiteLLM's
(`/health/liveliness`, `/health/readiness`), so Kubernetes probes written for either work; and
`/routes`, the routes this edge serves."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get

from gateway.edge import Edge
from llmgw import __version__

_encoder = msgspec.json.Encoder()


def _json(body: object, status: int = 200) -> Response:
    return Response(content=_encoder.encode(body), media_type="application/json", status_code=status)


def build_health_routes(edge: Edge) -> list:
    @get("/health/live")
    async def live() -> Response:
        return Response(content=b'{"status":"ok"}', media_type="application/json")

    @get("/health/ready")
    async def ready() -> Response:
        ok, checks = await edge.readiness()
        body = {"status": "ready" if ok else "not_ready", "checks": checks}
        return _json(body, 200 if ok else 503)

    @get("/health/liveliness")
    async def liveliness() -> Response:
        """LiteLLM's liveness probe: the process answers (its body is a JSON string)."""
        return _json("I'm alive!")

    @get("/health/readiness")
    async def readiness() -> Response:
        """LiteLLM's readiness probe and its JSON: `db` is llmgw's store (the JetStream streams
        and KV buckets on NATS), `cache` the NATS connection the key, budget and rate-limit views
        are fed by; 503 while the edge cannot serve (no bus, no streams, a provider without a
        worker), as /health/ready."""
        ok, checks = await edge.readiness()
        body: dict[str, object] = {
            "status": "healthy" if ok else "unhealthy",
            "db": "connected" if checks["streams"] else "Not connected",
            "cache": "connected" if checks["nats"] else "Not connected",
            "litellm_version": __version__,
            "llmgw_version": __version__,
            "success_callbacks": [],
            "checks": checks,
        }
        return _json(body, 200 if ok else 503)

    @get("/routes")
    async def routes(request: Request) -> Response:
        """Every route of this edge, as LiteLLM's `/routes` lists them: path, methods, name."""
        out = []
        for route in sorted(request.app.routes, key=lambda r: r.path):
            methods = sorted(m for m in getattr(route, "methods", ()) if m not in ("HEAD", "OPTIONS"))
            names = [h.handler_name for h in getattr(route, "route_handlers", ())]
            out.append({"path": route.path, "methods": methods or ["*"], "name": names[0] if names else None})
        return _json({"routes": out})

    return [live, ready, liveliness, readiness, routes]
