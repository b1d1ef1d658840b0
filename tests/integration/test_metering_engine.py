"""The embedded engine started with metering's sizing: a metering process of its own (on chdb)
reports, through its own query service, the pools, caches and memory limit its settings derived
from LLMGW_CHDB_*, and still stores usage rows."""

from __future__ import annotations

import pytest

from tests.integration.metering_support import Metering, publish, rows, usage_event, wait_count, wait_ready

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope="module")
async def sized(nats_server, nc, tmp_path_factory):
    metering = Metering(
        nats_server.url,
        tmp_path_factory.mktemp("metering-engine"),
        LLMGW_CHDB_CORES="3",
        LLMGW_CHDB_CACHE_MB="40",
        LLMGW_CHDB_MAX_MEMORY_MB="700",
        LLMGW_CHDB_OPTIONS="max_thread_pool_free_size=5",
    ).start()
    await wait_ready(nc, metering)
    yield metering
    assert metering.stop() == 0, metering.log()


async def server_setting(nc, metering: Metering, name: str) -> str:
    found = await rows(nc, metering, "SELECT value FROM system.server_settings WHERE name = {n:String}", n=name)
    assert len(found) == 1, name
    return found[0]["value"]


async def test_pools_follow_the_cores(nc, sized) -> None:
    assert (await rows(nc, sized, "SELECT getSetting('max_threads') AS n")) == [{"n": 3}]
    assert await server_setting(nc, sized, "background_pool_size") == "3"
    assert await server_setting(nc, sized, "threadpool_writer_pool_size") == "6"
    assert await server_setting(nc, sized, "max_thread_pool_size") == "256"


async def test_caches_and_memory_stay_within_the_budget(nc, sized) -> None:
    assert await server_setting(nc, sized, "mark_cache_size") == str(int(40 * MIB * 0.45))
    assert await server_setting(nc, sized, "uncompressed_cache_size") == "0"
    assert await server_setting(nc, sized, "max_server_memory_usage") == str(700 * MIB)
    assert await server_setting(nc, sized, "memory_worker_period_ms") == "1000"


async def test_an_option_given_by_name_has_the_last_word(nc, sized) -> None:
    assert await server_setting(nc, sized, "max_thread_pool_free_size") == "5"


async def test_usage_still_lands(nc, js, sized) -> None:
    event = usage_event()
    await publish(js, sized.subjects, event)
    await wait_count(nc, sized, event.key_hash, 1)
