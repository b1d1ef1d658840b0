"""`python -m gateway` / `llmgw edge`: the HTTP edge, served by Granian."""

from __future__ import annotations

import math
import os
import sys

from llmgw.config import ConfigError

SHUTDOWN_MARGIN = 10.0  # seconds past the shutdown grace for the edge to leave the bus


def main() -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    from gateway.settings import edge_settings_from_env

    try:
        settings = edge_settings_from_env(os.environ)  # checked here so a bad setting fails fast
    except ConfigError as exc:
        print(f"llmgw edge: {exc}", file=sys.stderr)
        sys.exit(2)
    Granian(
        "gateway.asgi:app_from_env",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.http_workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        log_enabled=False,
        # SIGTERM: Granian stops listening, closes idle keep-alive connections, lets responses in
        # flight (streams) finish, then runs the app's shutdown (the edge leaves the bus). A worker
        # process still busy after the grace and a margin for that shutdown is killed.
        workers_kill_timeout=math.ceil(settings.shutdown_grace + SHUTDOWN_MARGIN),
    ).serve()


if __name__ == "__main__":
    main()
