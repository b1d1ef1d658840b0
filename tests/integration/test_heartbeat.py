"""`llmgw healthcheck worker|metering`: the heartbeat a real worker and a real metering keep."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.procs import component
from tests.up_support import LLMGW, clean_env
from tests.waiting import eventually_sync

pytestmark = pytest.mark.integration


def healthcheck(name: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LLMGW, "healthcheck", name, "--file", str(path)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("name", ["worker", "metering"])
def test_a_running_component_is_alive_and_a_stopped_one_is_not(nats_server, bus_prefix, tmp_path: Path, name: str):
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: m\n    params: {model: openai/m, api_base: http://127.0.0.1:9/v1, api_key: sk-x}\n"
    )
    beat = tmp_path / "run" / f"{name}.heartbeat"
    env = clean_env(
        LLMGW_CONFIG=str(config),
        LLMGW_MASTER_KEY="sk-heartbeat-master",
        LLMGW_NATS_URL=nats_server.url,
        LLMGW_BUS_PREFIX=bus_prefix,
        LLMGW_CLICKHOUSE_URL=f"chdb://{tmp_path / 'clickhouse'}",
        LLMGW_HEARTBEAT_FILE=str(beat),
    )
    assert healthcheck(name, beat).returncode == 1  # (not started yet)
    proc = component(name, "workers" if name == "worker" else "metering", env, tmp_path).start()
    try:
        alive = eventually_sync(lambda: (done := healthcheck(name, beat)).returncode == 0 and done, f"the {name} heartbeat", 60)
        assert alive.stdout.startswith(f"{name} alive: heartbeat ")
    finally:
        assert proc.stop() == 0, proc.output()
    stopped = healthcheck(name, beat)
    assert stopped.returncode == 1 and "no " + name + " heartbeat" in stopped.stderr


def test_a_stale_heartbeat_is_not_alive(tmp_path: Path):
    beat = tmp_path / "old.heartbeat"
    beat.write_text("1\n")
    done = subprocess.run([LLMGW, "healthcheck", "worker", "--file", str(beat), "--max-age", "0"], capture_output=True, text=True)
    assert done.returncode == 1 and "old (over 0 s)" in done.stderr
