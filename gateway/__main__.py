"""`python -m gateway` / `llmgw edge`: the HTTP edge, served by Granian.

Exit code 2: an error a restart cannot fix (a bad setting, no secret, a secret other than the
one the stored keys were made with); the line on stderr says which.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import sys
from typing import TYPE_CHECKING

from llmgw.config import ConfigError

if TYPE_CHECKING:
    from gateway.settings import EdgeSettings

SHUTDOWN_MARGIN = 10.0  # seconds past the shutdown grace for the edge to leave the bus


async def check_secret(settings: EdgeSettings) -> None:
    """The secret check of `Edge.start`, once before Granian starts: a mismatch exits 2 here
    rather than failing each HTTP worker's startup."""
    import nats

    from llmgw.bus import jetstream
    from llmgw.contracts import Subjects
    from llmgw.secret_check import check_secret_fingerprint

    async def quiet(exc: Exception) -> None:  # (retried until NATS answers, as the edge itself would)
        pass

    nc = await nats.connect(
        settings.bus.servers,
        name="llmgw-edge-check",
        connect_timeout=settings.bus.connect_timeout,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.25,
        error_cb=quiet,
    )
    try:
        pause = 0.25
        while True:
            try:
                await check_secret_fingerprint(jetstream(nc, settings.bus), Subjects(settings.bus.prefix), settings.secret)
                return
            except ConfigError:
                raise
            except Exception:  # (a cluster still electing its leaders answers with timeouts: asked again)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
    finally:
        await nc.close()


def _exit_with_parent() -> None:
    """The check waits as long as NATS does not answer: an edge stopped meanwhile (SIGTERM while
    it starts) must not leave it behind."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def check_secret_main() -> None:
    """The secret check in a process of its own (the edge's settings read again from the same
    environment): exit 0 when the secret is the stored keys' one, 2 with the reason when not."""
    from gateway.settings import edge_settings_from_env
    from llmgw.logs import configure_logging

    _exit_with_parent()
    try:
        settings = edge_settings_from_env(os.environ)
        configure_logging("edge", settings.log_level)
        asyncio.run(check_secret(settings))
    except ConfigError as exc:
        print(f"llmgw edge: {exc}", file=sys.stderr)
        sys.exit(2)


def check_secret_in_child() -> int:
    """Run the secret check in a short-lived child; return its exit code. Granian's main process
    lives as long as the edge and serves nothing: it keeps none of the NATS client's modules."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-c", "from gateway.__main__ import check_secret_main; check_secret_main()"]
    ).returncode


def main() -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    from gateway.settings import edge_settings_from_env
    from llmgw.logs import configure_logging

    try:
        settings = edge_settings_from_env(os.environ)  # checked here so a bad setting fails fast
        configure_logging("edge", settings.log_level)
    except ConfigError as exc:
        print(f"llmgw edge: {exc}", file=sys.stderr)
        sys.exit(2)
    checked = check_secret_in_child()
    if checked != 0:
        sys.exit(checked)
    from llmgw.metrics import prepare_multiprocess_dir

    # Before Granian forks its workers (and before they import prometheus_client): /metrics
    # answers for all of them.
    made = settings.metrics and not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir = prepare_multiprocess_dir(os.environ) if settings.metrics else None
    try:
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
    finally:
        if made and metrics_dir is not None:  # (a directory of the operator's is left for them)
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
