"""`python -m metering` / `llmgw metering`: the metering process.

Exit code 2: an error a restart cannot fix (a bad setting, the embedded store's chdb module not
installed); the line on stderr says which. While it runs, metering keeps a heartbeat file
(`llmgw healthcheck metering` reads it).
"""

from __future__ import annotations

import os
import sys

from llmgw.config import ConfigError
from llmgw.liveness import heartbeat_path, with_heartbeat
from llmgw.logs import configure_logging
from llmgw.runtime import run_until_signalled


def main() -> None:
    from metering.runner import run_metering
    from metering.settings import check_store_driver, metering_settings_from_env

    try:
        settings = metering_settings_from_env(os.environ)
        check_store_driver(settings.clickhouse_url)
    except ConfigError as exc:
        print(f"llmgw metering: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging("metering", settings.log_level)
    heartbeat = heartbeat_path("metering")
    run_until_signalled(lambda stop: with_heartbeat(run_metering(settings, stop), heartbeat))


if __name__ == "__main__":
    main()
