from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.procs import NatsServer


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory):
    """A real nats-server with JetStream on a free port and a temporary store."""
    root = tmp_path_factory.mktemp("nats")
    server = NatsServer(store_dir=root / "store", log_dir=root).start()
    yield server
    server.stop()


@pytest.fixture
async def nats_client(nats_server):
    """A connection of the test's own to the session's nats-server."""
    import nats

    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


@pytest.fixture
def bus_prefix() -> str:
    """A subject / stream namespace of this test's own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d
