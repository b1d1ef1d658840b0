"""The admin-API e2e modules' stack: three edges on one bus prefix (so one set of KV buckets): the
main edge has no key policy; `edge-bounds` runs with seed 003's `upperbound_key_generate_params`,
`edge-defaults` with its `default_key_generate_params`. All three know the same model list, access
groups and `default_team_settings`. One stack per module."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.admin.support import DEFAULTS, PREFIX, UPPER_BOUNDS, write_keys_config
from tests.e2e.stack import Stack
from tests.procs import free_port, wait_ready


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("keys-stack")
    main = write_keys_config(root / "keys.yaml", upstream.base_url, {})
    s = Stack(root, nats_server.url, PREFIX, upstream, {"LLMGW_CONFIG": str(main)})
    try:
        s.start()
        for name, settings in (
            ("bounds", {"upperbound_key_generate_params": UPPER_BOUNDS}),
            ("defaults", {"default_key_generate_params": DEFAULTS}),
        ):
            cfg = write_keys_config(root / f"keys-{name}.yaml", upstream.base_url, settings)
            port = free_port()
            s._start(f"edge-{name}", "gateway", {"LLMGW_CONFIG": str(cfg), "LLMGW_PORT": str(port)})
            setattr(s, f"{name}_url", f"http://127.0.0.1:{port}")
        wait_ready(s.bounds_url, 45)
        wait_ready(s.defaults_url, 45)
    except BaseException:
        s.stop()
        raise
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=15) as client:
        yield client
