"""`python -m metering` / `llmgw metering`: the metering process."""

from __future__ import annotations

import os
import sys

from llmgw.config import ConfigError
from llmgw.logs import configure_logging
from llmgw.runtime import run_until_signalled


def main() -> None:
    from metering.runner import run_metering
    from metering.settings import metering_settings_from_env

    try:
        settings = metering_settings_from_env(os.environ)
    except ConfigError as exc:
        print(f"llmgw metering: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging("metering", settings.log_level)
    run_until_signalled(lambda stop: run_metering(settings, stop))


if __name__ == "__main__":
    main()
