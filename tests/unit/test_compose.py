from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmgw_cli.main import build_parser

pytestmark = pytest.mark.unit

COMPOSE = Path(__file__).resolve().parents[2] / "compose.yaml"


def test_compose_runs_every_component_with_commands_the_cli_knows():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"nats", "clickhouse", "migrate", "edge", "worker", "metering"} <= set(services)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    for name in ("migrate", "edge", "worker", "metering"):
        command = services[name]["command"]
        assert command[0] == "llmgw" and command[1] in commands, (name, command)
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "-js" in services["nats"]["command"]
    for name in ("nats", "clickhouse", "edge"):
        assert "healthcheck" in services[name]
