from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import compose_spec
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


COMPOSE_ENV = {"LLMGW_MASTER_KEY": "sk-compose-check", "GRAFANA_ADMIN_PASSWORD": "grafana-compose-check"}


def compose_command() -> list[str] | None:
    """`docker compose` (the plugin) or `docker-compose`, whichever is installed."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(compose_command() is None, reason="neither docker compose nor docker-compose is installed")
def test_docker_compose_accepts_the_file():
    env = {**os.environ, **COMPOSE_ENV}
    command = compose_command() or []
    done = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# --- the Compose specification, without docker ------------------------------------------------

_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


class InterpolationError(ValueError):
    """A `${VAR:?message}` (or `${VAR?message}`) whose variable is not set."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """`value` (loaded YAML) with Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
    `${VAR:?message}`, `${VAR?message}` and `$$` resolved against `env`."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def resolve(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, operator, argument = match[1], match[2], match[3] or ""
        present = env.get(name)
        unset = present is None or (operator is not None and operator.startswith(":") and present == "")
        if operator in ("-", ":-"):
            return argument if unset else str(present)
        if operator in ("?", ":?"):
            if unset:
                raise InterpolationError(f"{name}: {argument}")
            return str(present)
        return present or ""

    return _VARIABLE.sub(resolve, value)


def validated(spec: Any, env: Mapping[str, str] = COMPOSE_ENV) -> Any:
    """The Compose file `spec` (as yaml.safe_load gives it: merge keys resolved), interpolated and
    parsed by the Compose specification's parser, which raises ValueError on a key it does not know
    or a value of the wrong type."""
    resolved = interpolate(spec, env)
    return compose_spec.PyCompose.from_json(json.dumps(resolved))


def loaded() -> Any:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_file_follows_the_compose_specification():
    project = validated(loaded())
    assert {"nats", "clickhouse", "migrate", "metering", "worker", "edge", "prometheus", "grafana"} <= set(
        project.service_names()
    )
    parsed = project.to_dict()["services"]
    assert parsed["worker"]["deploy"]["replicas"] >= 2
    assert parsed["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == COMPOSE_ENV["GRAFANA_ADMIN_PASSWORD"]
    assert parsed["prometheus"]["volumes"]


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("a misspelled key", lambda s: s["services"]["grafana"].update(enviroment={"A": "1"})),
        ("a wrong type", lambda s: s["services"]["worker"]["deploy"].update(replicas="two")),
        ("an unknown condition", lambda s: s["services"]["metering"]["depends_on"]["nats"].update(condition="up")),
        ("a missing services key", lambda s: s.update(servicez=s.pop("services"))),
    ],
)
def test_a_broken_file_is_refused_by_the_same_check(where: str, change):
    spec = loaded()
    change(spec)
    with pytest.raises(ValueError):
        validated(spec)


def test_a_required_variable_left_unset_is_refused():
    with pytest.raises(InterpolationError, match="GRAFANA_ADMIN_PASSWORD"):
        validated(loaded(), {"LLMGW_MASTER_KEY": "sk-compose-check"})
    assert interpolate("${A:-x}/${B-y}/${C}/$$", {"A": "", "B": ""}) == "x///$"


def test_every_mounted_file_of_the_repository_exists():
    services = interpolate(loaded(), COMPOSE_ENV)["services"]
    sources = [
        volume.split(":", 1)[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert any("deploy/prometheus" in s for s in sources) and any("deploy/grafana" in s for s in sources)
    for source in sources:
        assert (ROOT / source).exists(), source
    for name in ("prometheus", "grafana"):
        mounts = [v for v in services[name]["volumes"] if v.startswith("./")]
        assert mounts and all(v.endswith(":ro") for v in mounts), (name, mounts)


def test_prometheus_scrapes_the_edge_every_worker_and_metering_on_their_ports():
    services = loaded()["services"]
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"edge", "worker", "metering"}
    (edge,) = jobs["edge"]["static_configs"][0]["targets"]
    assert edge == "edge:4000" and services["edge"]["ports"][0].endswith(":4000")
    assert jobs["edge"].get("metrics_path", "/metrics") == "/metrics"
    (discovery,) = jobs["worker"]["dns_sd_configs"]
    assert discovery["type"] == "A" and discovery["names"] == ["worker"]
    (metering,) = jobs["metering"]["static_configs"][0]["targets"]
    for job, host, port in (("worker", "worker", discovery["port"]), ("metering", *metering.split(":"))):
        assert host in services, job
        env = services[host]["environment"]
        variable = f"LLMGW_{host.upper()}_METRICS_PORT"
        assert int(env[variable]) == int(port), job
        assert env["LLMGW_METRICS_HOST"] == "0.0.0.0", job
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_grafana_has_the_clickhouse_plugin_no_anonymous_viewing_and_a_password_from_the_environment():
    grafana = loaded()["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana-oss:")
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"])
    assert env["GF_INSTALL_PLUGINS"].split()[0] == "grafana-clickhouse-datasource"
    # the data source provisioning reads the ClickHouse password from Grafana's environment
    sources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/llmgw.yaml").read_text())["datasources"]
    (clickhouse,) = [s for s in sources if s["type"] == "grafana-clickhouse-datasource"]
    variable = re.fullmatch(r"\$\{(\w+)\}", clickhouse["secureJsonData"]["password"])
    assert variable and variable[1] in env
    assert env[variable[1]] == loaded()["services"]["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"]


def test_the_cluster_profile_runs_three_nats_nodes_that_route_to_each_other():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    nodes = [name for name, service in services.items() if "nats" in str(service.get("image", ""))]
    assert sorted(nodes) == ["nats", "nats-2", "nats-3"]
    assert all(services[name].get("profiles") == ["cluster"] for name in ("nats-2", "nats-3"))
    assert "profiles" not in services["nats"]  # the one server by default
    routes = re.findall(r"nats-route://([\w-]+):6222", (ROOT / "deploy/nats/cluster.conf").read_text())
    assert sorted(routes) == sorted(nodes)
    names = {services[name]["environment"]["NATS_SERVER_NAME"] for name in nodes}
    assert len(names) == 3  # JetStream's cluster needs a name per node
    env = yaml.safe_load(COMPOSE.read_text())["x-llmgw"]["environment"]
    assert env["LLMGW_NATS_URL"].startswith("${LLMGW_NATS_URL:-") and "LLMGW_NATS_REPLICAS" in env
