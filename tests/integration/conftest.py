"""Fixtures of the integration modules."""

from __future__ import annotations

import nats
import pytest


@pytest.fixture(scope="module")
async def nc(nats_server):
    """A NATS connection of the module's own to the session's nats-server."""
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


@pytest.fixture
def js(nc):
    """JetStream on the module's connection."""
    return nc.jetstream()
