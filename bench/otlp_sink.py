"""An OTLP/HTTP trace receiver for the benchmarks: takes every `POST /v1/traces` (protobuf, as
the OpenTelemetry protocol specification's OTLP/HTTP section describes) and answers 200 with an
empty `ExportTraceServiceResponse` (a protobuf message with no fields: an empty body). It does
not decode what it gets (a collector's cost is not llmgw's); it counts requests and bytes, read
at `GET /_sink/stats`.

Run:  .venv/bin/python -m bench.otlp_sink --port 0     (prints READY <port>)
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

from bench.fake_http import FakeServerHandle, Request, Response, fake_cli, start_app

PROTOBUF = "application/x-protobuf"


@dataclass
class SinkStats:
    exports: int = 0
    bytes: int = 0


class OtlpSink:
    def __init__(self) -> None:
        self.stats = SinkStats()

    async def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path == "/v1/traces":
            self.stats.exports += 1
            self.stats.bytes += len(request.body)
            return Response(200, b"", {"content-type": PROTOBUF})
        if request.method == "GET" and request.path == "/_sink/stats":
            return Response(200, json.dumps(asdict(self.stats)).encode(), {"content-type": "application/json"})
        return Response(404, b"", {"content-type": "text/plain"})


async def start_sink(host: str = "127.0.0.1", port: int = 0) -> tuple[FakeServerHandle, int]:
    return await start_app(OtlpSink(), host, port)


def main(argv: list[str] | None = None) -> None:
    fake_cli("python -m bench.otlp_sink", __doc__ or "", lambda a: start_sink(a.host, a.port), argv, "(not checked)")


if __name__ == "__main__":
    sys.exit(main())
