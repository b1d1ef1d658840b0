"""`llmgw up` fails fast: before any process starts, one clear line on stderr, no traceback, a
non-zero exit; and a component started on its own without a key secret refuses to start."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import REPO, free_port, port_open
from tests.up_support import LLMGW, clean_env, run_up, with_prelude

pytestmark = pytest.mark.e2e

MASTER = "sk-refusals-master-0000"
GOOD_MODEL = (
    "model_list:\n  - model_name: gpt-4\n    params: {model: openai/gpt-4o, api_base: http://127.0.0.1:9/v1, api_key: sk-x}\n"
)


def refused(done: subprocess.CompletedProcess, tmp_path: Path, *expected: str) -> str:
    """The one line `up` printed; nothing was made or started (no NATS store, no secret, no port bound)."""
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    for text in expected:
        assert text in lines[0], lines[0]
    state = tmp_path / "state"
    assert not (state / "nats").exists() and not (state / "clickhouse").exists() and not (state / "secret").exists()
    return lines[0]


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_no_master_key_says_how_to_set_one(tmp_path: Path):
    done = run_up(tmp_path, ["--config", config(tmp_path, GOOD_MODEL), "--nats-port", str(free_port())], clean_env())
    refused(done, tmp_path, "no master key", "LLMGW_MASTER_KEY=sk-... llmgw up", "general_settings.master_key")


def test_no_config_and_no_master_key_says_the_same(tmp_path: Path):
    done = run_up(tmp_path, ["--nats-port", str(free_port())], clean_env())
    refused(done, tmp_path, "LLMGW_MASTER_KEY=sk-... llmgw up")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model_list: [\n", "is not valid YAML"),
        ("model_lsit:\n  - model_name: gpt-4\n", "unknown section 'model_lsit': did you mean 'model_list'?"),
        ("model_list:\n  - model_name: a\n    params: {model: openai/x, api_base: http://h/v1, rpm: many}\n", "params.rpm"),
        (
            "model_list:\n  - model_name: a\n    params: {model: openai/x, api_key: os.environ/NOT_SET_FOR_LLMGW}\n",
            "NOT_SET_FOR_LLMGW is not set",
        ),
        ("model_list:\n  - model_name: claude\n    params: {model: antropic/claude-3-5-sonnet}\n", "did you mean 'anthropic'?"),
    ],
    ids=["yaml", "unknown-section", "invalid-field", "missing-variable", "unknown-provider"],
)
def test_a_config_error_is_one_line(tmp_path: Path, text: str, expected: str):
    done = run_up(
        tmp_path, ["--config", config(tmp_path, text), "--nats-port", str(free_port())], clean_env(LLMGW_MASTER_KEY=MASTER)
    )
    line = refused(done, tmp_path, expected)
    if "antropic" in text:
        assert "known providers: " in line and "openai" in line  # never taken for an OpenAI model name


def test_a_bad_component_setting_is_one_line(tmp_path: Path):
    env = clean_env(LLMGW_MASTER_KEY=MASTER, LLMGW_REQUEST_TIMEOUT="soon")
    done = run_up(tmp_path, ["--config", config(tmp_path, GOOD_MODEL), "--nats-port", str(free_port())], env)
    refused(done, tmp_path, "LLMGW_REQUEST_TIMEOUT")


def test_the_http_port_in_use(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port, nats_port = taken.getsockname()[1], free_port()
        args = [
            "--config",
            config(tmp_path, GOOD_MODEL),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--nats-port",
            str(nats_port),
        ]
        done = run_up(tmp_path, args, clean_env(LLMGW_MASTER_KEY=MASTER))
    refused(done, tmp_path, f"HTTP port {port}", "in use")
    assert not port_open(nats_port)


def test_an_explicit_nats_port_in_use(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        nats_port = taken.getsockname()[1]
        args = [
            "--config",
            config(tmp_path, GOOD_MODEL),
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            "--nats-port",
            str(nats_port),
        ]
        done = run_up(tmp_path, args, clean_env(LLMGW_MASTER_KEY=MASTER))
    refused(done, tmp_path, f"NATS port {nats_port} (--nats-port) is in use")


def test_a_missing_nats_server_binary(tmp_path: Path):
    empty = tmp_path / "no-scripts"
    empty.mkdir()
    prelude = (
        "import sysconfig\n_get = sysconfig.get_path\n"
        f"sysconfig.get_path = lambda name, *a, **k: {str(empty)!r} if name == 'scripts' else _get(name, *a, **k)"
    )
    args = ["--config", config(tmp_path, GOOD_MODEL), "--nats-port", str(free_port())]
    done = run_up(tmp_path, args, clean_env(LLMGW_MASTER_KEY=MASTER), command=with_prelude(prelude))
    refused(done, tmp_path, "nats-server is not installed", "llmgw[embedded]")


def test_a_missing_chdb_for_the_embedded_store(tmp_path: Path):
    prelude = "import sys\nsys.modules['chdb'] = None  # as if it were not installed"
    args = ["--config", config(tmp_path, GOOD_MODEL), "--nats-port", str(free_port())]
    done = run_up(tmp_path, args, clean_env(LLMGW_MASTER_KEY=MASTER), command=with_prelude(prelude))
    refused(done, tmp_path, "chdb is not installed", "llmgw[embedded]")


def test_a_locked_state_directory(tmp_path: Path):
    """(tests/e2e/test_up.py tries the same against a running `up`.)"""
    state = tmp_path / "state"
    state.mkdir()
    fd = os.open(state / "llmgw.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        nats_port = free_port()
        done = run_up(
            tmp_path,
            ["--config", config(tmp_path, GOOD_MODEL), "--nats-port", str(nats_port)],
            clean_env(LLMGW_MASTER_KEY=MASTER),
        )
    finally:
        os.close(fd)
    line = refused(done, tmp_path)
    assert line == f"llmgw is already running in {state.resolve()} (pid {os.getpid()})"
    assert not (state / "logs").exists() and not (state / "secret").exists() and not port_open(nats_port)


@pytest.mark.parametrize("module", ["gateway", "workers"])
def test_a_component_on_its_own_without_a_secret_refuses_to_start(tmp_path: Path, module: str):
    env = clean_env(LLMGW_CONFIG=config(tmp_path, GOOD_MODEL), LLMGW_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    done = subprocess.run([sys.executable, "-m", module], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no secret to hash virtual keys with" in lines[0] and "LLMGW_SECRET_KEY" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_llmgw_edge_without_a_secret_exits_2(tmp_path: Path):
    env = clean_env(LLMGW_CONFIG=config(tmp_path, GOOD_MODEL))
    done = subprocess.run([LLMGW, "edge"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("llmgw edge: no secret"), done.stderr
