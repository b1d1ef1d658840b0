"""Entry point for Granian's worker processes: each builds its own app from the environment."""

from __future__ import annotations

import gc

from litestar import Litestar

from gateway.app import create_app
from gateway.settings import edge_settings_from_env
from llmgw.logs import configure_logging


def app_from_env() -> Litestar:
    settings = edge_settings_from_env()
    configure_logging("edge", settings.log_level)
    app = create_app(settings)
    # What exists once the edge has started lives as long as the process: take it out of the
    # cyclic GC's view, so that collections only walk objects made since.
    app.on_startup.append(gc.freeze)
    return app
