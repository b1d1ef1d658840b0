"""`llmgw up`: the embedded default, one command for everything, stopped cleanly by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sysconfig
from pathlib import Path

import openai
import pytest

from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY
from tests.procs import free_port, port_open, wait_ready
from tests.usage_query import usage_rows

pytestmark = pytest.mark.e2e


def test_up_serves_meters_and_stops_cleanly(upstream, tmp_path: Path):
    port, nats_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n  - model_name: gpt-4\n    litellm_params:\n      model: openai/gpt-4o\n"
        f"      api_base: {upstream.base_url}\n      api_key: os.environ/UPSTREAM_KEY\n"
    )
    llmgw = str(Path(sysconfig.get_path("scripts")) / "llmgw")
    env = {**os.environ, "LLMGW_MASTER_KEY": MASTER_KEY, "UPSTREAM_KEY": UPSTREAM_KEY}
    for name in ("LLMGW_NATS_URL", "LLMGW_BUS_PREFIX", "LLMGW_CLICKHOUSE_URL", "LLMGW_CONFIG"):
        env.pop(name, None)
    with open(tmp_path / "up.log", "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [
                llmgw,
                "up",
                "--config",
                str(config),
                "--state-dir",
                str(tmp_path / "state"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--nats-port",
                str(nats_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", 60)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=MASTER_KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
        assert raw.parse().choices[0].message.content
        request_id = raw.headers["x-request-id"]
        row = usage_rows(f"nats://127.0.0.1:{nats_port}", "llmgw", [request_id])[request_id]
        assert row["completion_tokens"] == 8 and (tmp_path / "state" / "clickhouse").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    output = (tmp_path / "up.log").read_text()
    assert code == 0, output[-3000:]
    assert "process_killed" not in output  # every component stopped on SIGTERM by itself
    assert not port_open(port) and not port_open(nats_port)
