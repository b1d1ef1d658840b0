from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
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


ROOT = COMPOSE.parent


def test_worker_and_metering_have_a_healthcheck_the_cli_answers():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    parser = build_parser()
    health = parser._subparsers._group_actions[0].choices["healthcheck"]
    components = next(a for a in health._actions if a.dest == "component").choices
    for name in ("worker", "metering"):
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "llmgw", "healthcheck"] and test[3] == name and name in components, test


def test_the_default_config_mount_is_a_file_of_the_repository():
    spec = yaml.safe_load(COMPOSE.read_text())
    volume = spec["x-llmgw"]["volumes"][0]
    source = re.fullmatch(r"\$\{LLMGW_CONFIG_FILE:-(.+)\}:/etc/llmgw/config.yaml:ro", volume)
    assert source, volume
    assert (ROOT / source.group(1)).is_file()


def test_the_image_runs_as_a_user_and_installs_from_the_lock_file():
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in dockerfile
    assert re.search(r"pip install [^\n]*--no-deps \.", dockerfile)
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==\S+ \\$", lock, re.M)}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
        assert name in pinned, f"{name} is not in requirements.lock: regenerate it (see the Dockerfile)"
    assert "--hash=sha256:" in lock and "file:" not in lock


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_accepts_the_file():
    env = {**os.environ, "LLMGW_MASTER_KEY": "sk-compose-check"}
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
