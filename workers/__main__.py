"""`python -m workers` / `llmgw worker`: one provider worker process.

Exit code 2: an error a restart cannot fix (a bad setting, no secret); the line on stderr says
which. While it runs, the worker keeps a heartbeat file (`llmgw healthcheck worker` reads it).
"""

from __future__ import annotations

import os
import sys

from llmgw.config import ConfigError
from llmgw.liveness import heartbeat_path, with_heartbeat
from llmgw.logs import configure_logging
from llmgw.runtime import run_until_signalled


def main() -> None:
    from workers.runner import run_worker
    from workers.settings import worker_settings_from_env

    try:
        settings = worker_settings_from_env(os.environ)
    except ConfigError as exc:
        print(f"llmgw worker: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging("worker", settings.log_level)
    heartbeat = heartbeat_path("worker")
    run_until_signalled(lambda stop: with_heartbeat(run_worker(settings, stop), heartbeat))


if __name__ == "__main__":
    main()
