"""`llmgw up`: the embedded default, one command for everything, stopped cleanly by SIGTERM; one
`up` per state directory; the key secret it keeps; a child that must not be restarted."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY
from tests.procs import free_port, port_open, wait_ready
from tests.up_support import LLMGW, READY_LINE, Up, clean_env, gpt4_config
from tests.usage_query import usage_rows
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hi"}]


def test_up_serves_meters_and_stops_cleanly(upstream, tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(gpt4_config(upstream.base_url))
    up = Up(tmp_path / "state", config, clean_env(LLMGW_MASTER_KEY=MASTER_KEY, UPSTREAM_KEY=UPSTREAM_KEY)).start()
    port, nats_port = up.port, up.nats_port
    try:
        wait_ready(up.base_url, 90)
        client = openai.OpenAI(base_url=f"{up.base_url}/v1", api_key=MASTER_KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=HELLO)
        assert raw.parse().choices[0].message.content
        request_id = raw.headers["x-request-id"]
        row = usage_rows(up.nats_url, "llmgw", [request_id])[request_id]
        assert row["completion_tokens"] == 8 and (tmp_path / "state" / "clickhouse").is_dir()

        # The start-up report, once the edge answers: where it is, what it serves, where things are.
        console = up.wait_ready(30)
        assert console.count(READY_LINE) == 1
        assert f"{READY_LINE}http://127.0.0.1:{port}" in console
        assert "models  gpt-4" in console and f"state   {up.state_dir}" in console and "stop    Ctrl-C" in console
        assert "logs    " in console and str(up.state_dir / "logs") in console
        assert f"console {up.base_url}/ui" in console  # the admin console, which answers
        assert httpx.get(f"{up.base_url}/ui/login", timeout=5).status_code == 200
        # ... and where each process serves its Prometheus metrics: every one of them answers.
        (metrics_line,) = [line for line in console.splitlines() if line.startswith("  metrics ")]
        scraped = dict(part.split(" ", 1) for part in metrics_line.removeprefix("  metrics ").split("; "))
        assert set(scraped) == {"edge", "metering", "worker-0"} and scraped["edge"] == f"{up.base_url}/metrics"
        for name, url in scraped.items():
            page = httpx.get(url, timeout=10)
            assert page.status_code == 200 and "llmgw_" in page.text, name
        assert "llmgw_requests_total{" in httpx.get(scraped["edge"], timeout=10).text
        # The components' logs are files of JSON lines; nats-server's banner is in its own.
        assert "Starting nats-server" in up.log("nats-server") and "[INF]" not in console
        assert '"event":"edge_started"' in up.log("edge")
        assert '"event":"process_started"' in up.log("supervisor")

        # The key secret was generated for this directory, readable by its owner only.
        assert stat.S_IMODE((up.state_dir / "secret").stat().st_mode) == 0o600

        # A second `up` on the same directory refuses at once and touches nothing.
        other_port, other_nats = free_port(), free_port()
        second = subprocess.run(
            [LLMGW, "up", "--config", str(config), "--state-dir", str(up.state_dir), "--port", str(other_port),
             "--nats-port", str(other_nats)],
            env=up.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1, second.stdout + second.stderr
        assert second.stderr.strip() == f"llmgw is already running in {up.state_dir} (pid {up.proc.pid})"
        assert not port_open(other_port) and not port_open(other_nats)
        assert len(up.events("process_started")) == 4  # (nats-server, metering, worker-0, edge: no new one)

        # A crashed worker is started again, and the gateway answers again.
        worker = next(e["pid"] for e in up.events("process_started") if e["process"] == "worker-0")
        os.kill(worker, signal.SIGKILL)
        eventually_sync(lambda: [e["process"] for e in up.events("process_started")].count("worker-0") == 2, "a new worker", 30)
        eventually_sync(lambda: client.chat.completions.create(model="gpt-4", messages=HELLO).choices, "an answer again", 30)
    finally:
        code = up.stop()
    console = up.console()
    assert code == 0, console[-3000:]
    assert "process_killed" not in console + up.log("supervisor")  # every component stopped on SIGTERM by itself
    stopped = [e["process"] for e in up.events("process_stopped")]
    assert stopped == ["edge", "worker-0", "metering", "nats-server"]
    assert console.rstrip().endswith("llmgw: stopped")
    errors = [ln for ln in console.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and "worker-0 exited" in errors[0], errors  # (the worker killed above, and only that)
    assert not port_open(port) and not port_open(nats_port)


def test_up_keeps_its_key_secret_and_refuses_to_start_under_another(upstream, tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(gpt4_config(upstream.base_url))
    env = clean_env(LLMGW_MASTER_KEY=MASTER_KEY, UPSTREAM_KEY=UPSTREAM_KEY)
    state = tmp_path / "state"

    first = Up(state, config, env).start()
    try:
        first.wait_ready()
        made = httpx.post(f"{first.base_url}/key/generate", json={}, headers={"Authorization": f"Bearer {MASTER_KEY}"})
        key = made.json()["key"]
    finally:
        assert first.stop(sig=signal.SIGINT) == 0, first.console()[-3000:]  # Ctrl-C
    assert [e["process"] for e in first.events("process_stopped")] == ["edge", "worker-0", "metering", "nats-server"]

    # Another secret than the one the key was made with: the edge says so and exits 2; the
    # supervisor does not restart it, stops the rest in order and exits non-zero.
    other = Up(state, config, {**env, "LLMGW_SECRET_KEY": "another-secret-0123456789"}, "--log-format", "json").start()
    code = other.wait_exit()
    assert code == 1, other.console()[-3000:]
    failed = other.events("process_failed")
    assert [(e["process"], e["code"]) for e in failed] == [("edge", 2)]
    assert "differs from the one the stored keys were made with" in failed[0]["error"]
    assert [e["process"] for e in other.events("process_started")].count("edge") == 1
    assert not port_open(other.port) and not port_open(other.nats_port)

    # The secret kept in the state directory: the key made at the first start still works.
    again = Up(state, config, env).start()
    try:
        again.wait_ready()
        sdk = openai.OpenAI(base_url=f"{again.base_url}/v1", api_key=key, max_retries=0)
        assert sdk.chat.completions.create(model="gpt-4", messages=HELLO).choices[0].message.content
    finally:
        assert again.stop() == 0, again.console()[-3000:]
