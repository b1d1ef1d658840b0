"""The batch store's guarantees on a real nats-server: a line is claimed once, ever (a second
claim, by this runner or another, is refused); a lease is held by one edge until it lapses; a
batch's record changes by compare-and-set, so a cancel and a runner's progress both land."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from gateway.batches.store import BatchStore
from llmgw.contracts import BatchLine, BatchRecord, BatchStatus, LineState, Subjects
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def record(batch_id: str = "batch_1") -> BatchRecord:
    return BatchRecord(
        id=batch_id,
        endpoint="/v1/chat/completions",
        input_file_id="file-1",
        completion_window="24h",
        created_at=1,
        expires_at=2,
        key_hash="k",
    )


@pytest.fixture
async def store(nats_client, bus_prefix) -> BatchStore:
    s = BatchStore(Subjects(bus_prefix))
    await s.start(nats_client.jetstream())
    return s


async def test_a_line_is_claimed_once_and_its_result_written_on_the_claim(store: BatchStore) -> None:
    claim = BatchLine(state=LineState.SENT, request_id="batch_1-0")
    revision = await store.claim_line("batch_1", 0, claim)
    assert revision is not None
    assert await store.claim_line("batch_1", 0, claim) is None  # never sent twice
    done = BatchLine(state=LineState.DONE, request_id="req-1", ok=True, result="{}", cost=0.5)
    await store.finish_line("batch_1", 0, done, revision)
    assert await store.line_records("batch_1", 2) == {0: done}
    with pytest.raises(Exception, match="wrong last sequence"):  # a stale runner cannot overwrite it
        await store.finish_line("batch_1", 0, claim, revision)


async def test_a_lease_is_one_edges_until_it_lapses(store: BatchStore) -> None:
    await store.create(record())
    held = await store.take_lease("batch_1", "edge-a", 0.5, None)
    assert held is not None
    assert await store.take_lease("batch_1", "edge-b", 0.5, None) is None
    renewed = await store.take_lease("batch_1", "edge-a", 0.5, held)
    assert renewed is not None and renewed > held
    started = time.monotonic()
    await eventually(lambda: store.take_lease("batch_1", "edge-b", 5, None), "edge-a's lease to lapse", timeout=5)
    assert time.monotonic() - started >= 0.3  # (not before it lapsed)
    assert await store.take_lease("batch_1", "edge-a", 5, renewed) is None  # edge-a learns it lost it
    assert await store.open_ids() == ["batch_1"]
    await store.ended("batch_1")
    assert await store.open_ids() == []
    assert await store.take_lease("batch_1", "edge-b", 5, None) is None  # an ended batch is run by no one


async def test_concurrent_changes_of_a_batch_all_land(store: BatchStore) -> None:
    await store.create(record("batch_2"))

    def counted(r: BatchRecord) -> BatchRecord:
        return msgspec.structs.replace(r, completed=r.completed + 1)

    def cancelling(r: BatchRecord) -> BatchRecord:
        return msgspec.structs.replace(r, status=BatchStatus.CANCELLING)

    await asyncio.gather(*(store.change("batch_2", counted) for _ in range(5)), store.change("batch_2", cancelling))
    found = await store.get("batch_2")
    assert found is not None
    assert (found[0].completed, found[0].status) == (5, BatchStatus.CANCELLING)
    assert await store.get("batch_x-../bad") is None
