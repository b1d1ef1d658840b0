"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
from litestar import Response, get

from gateway.edge import Edge

_encoder = msgspec.json.Encoder()


def build_health_routes(edge: Edge) -> list:
    @get("/health/live")
    async def live() -> Response:
        return Response(content=b'{"status":"ok"}', media_type="application/json")

    @get("/health/ready")
    async def ready() -> Response:
        ok, checks = await edge.readiness()
        body = {"status": "ready" if ok else "not_ready", "checks": checks}
        return Response(content=_encoder.encode(body), media_type="application/json", status_code=200 if ok else 503)

    return [live, ready]
