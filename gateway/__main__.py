"""`python -m gateway` / `llmgw edge`: the HTTP edge, served by Granian."""

from __future__ import annotations

import os
import sys

from llmgw.config import ConfigError


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
        workers_kill_timeout=30,
    ).serve()


if __name__ == "__main__":
    main()
