"""Entry point for Granian's worker processes: each builds its own app from the environment."""

from __future__ import annotations

from litestar import Litestar

from gateway.app import create_app
from gateway.settings import edge_settings_from_env
from llmgw.logs import configure_logging


def app_from_env() -> Litestar:
    settings = edge_settings_from_env()
    configure_logging("edge", settings.log_level)
    return create_app(settings)
