"""Fixtures of the Gemini and Vertex AI adapter modules, one of each per module: the fake Google
upstream (bench/fake_gemini.py, in-process), a real UpstreamClient, a service account's key and
its key file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.fake_gemini import FakeServerHandle, start_fake
from tests.integration.gemini.support import KEY, public_pem, service_account
from workers.http_client import UpstreamClient


@pytest.fixture(scope="module")
def sa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
async def fake(sa_key):
    handle, _ = await start_fake(api_key=KEY, vertex_public_keys=[public_pem(sa_key)])
    yield handle
    await handle.stop()


@pytest.fixture(scope="module")
async def client():
    c = UpstreamClient(16)
    yield c
    await c.aclose()


@pytest.fixture(scope="module")
def sa_path(sa_key, fake: FakeServerHandle, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sa") / "service-account.json"
    path.write_text(service_account(sa_key, f"{fake.root_url}/token"))
    return path
