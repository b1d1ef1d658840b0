"""Fixtures of the e2e modules: a fake OpenAI upstream and the whole gateway in front of it
(tests/e2e/stack.py), one of each per module."""

from __future__ import annotations

import pytest

from tests.e2e.stack import UPSTREAM_KEY, Stack
from tests.procs import FakeUpstream


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("upstream"), UPSTREAM_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    prefix = "e2e" + request.module.__name__.rsplit(".", 1)[-1].replace("test_", "").replace("_", "")[:20]
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, prefix, upstream, {}).start()
    yield s
    s.stop()
