"""`python -m workers` / `llmgw worker`: one provider worker process."""

from __future__ import annotations

import os
import sys

from llmgw.config import ConfigError
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
    run_until_signalled(lambda stop: run_worker(settings, stop))


if __name__ == "__main__":
    main()
