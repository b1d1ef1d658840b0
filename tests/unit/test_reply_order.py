"""A request's replies reach its handler in the worker's order, each once (gateway/reply_order.py),
however the bus delivered them after a worker sent its latest replies again."""

from __future__ import annotations

import asyncio

import pytest

from gateway.reply_order import ReplyOrder
from llmgw.contracts import Chunks, Completed, Failed

pytestmark = pytest.mark.unit


def chunk(seq: int, done: bool = False, attempt: int = 1) -> Chunks:
    return Chunks(request_id="r", attempt=attempt, seq=seq, data=[f"c{seq}".encode()], done=done)


def handed(queue: asyncio.Queue) -> list:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def seqs(replies: list) -> list:
    return [(r.attempt, r.seq) if isinstance(r, Chunks) else type(r).__name__ for r in replies]


async def test_copies_are_dropped_and_a_gap_waits_for_its_chunk():
    queue: asyncio.Queue = asyncio.Queue()
    order = ReplyOrder(queue)
    taken = [order.put(c) for c in (chunk(0), chunk(1), chunk(0), chunk(3), chunk(1))]
    assert taken == [True, True, False, True, False]
    assert seqs(handed(queue)) == [(1, 0), (1, 1)]  # 3 waits for 2
    assert order.put(chunk(2)) is True
    assert seqs(handed(queue)) == [(1, 2), (1, 3)]
    assert order.put(chunk(4, done=True)) and not order.put(chunk(4, done=True)) and not order.put(chunk(2))
    assert seqs(handed(queue)) == [(1, 4)]


async def test_a_failure_waits_for_the_chunks_sent_before_it():
    queue: asyncio.Queue = asyncio.Queue()
    order = ReplyOrder(queue)
    failed = Failed(request_id="r", status=502, message="upstream broke", type="api_error")
    for reply in (chunk(0), chunk(2), failed):
        order.put(reply)
    assert seqs(handed(queue)) == [(1, 0)]
    order.put(chunk(1))
    assert seqs(handed(queue)) == [(1, 1), (1, 2), "Failed"]
    assert not order.put(failed)


async def test_a_whole_answer_is_handed_over_once():
    queue: asyncio.Queue = asyncio.Queue()
    order = ReplyOrder(queue)
    answer = Completed(request_id="r", body=b"{}")
    assert order.put(answer) and not order.put(answer)
    assert seqs(handed(queue)) == ["Completed"]


async def test_another_attempt_goes_through_and_an_older_ones_copies_do_not():
    queue: asyncio.Queue = asyncio.Queue()
    order = ReplyOrder(queue)
    order.put(chunk(0))
    order.put(chunk(0, attempt=2))  # another worker took the request again: the pipeline decides
    assert not order.put(chunk(1))  # (the first worker's, late)
    assert seqs(handed(queue)) == [(1, 0), (2, 0)]


async def test_a_chunk_lost_for_good_costs_its_part_only(monkeypatch):
    from gateway import reply_order
    from tests.waiting import eventually

    monkeypatch.setattr(reply_order, "GAP_WAIT", 0.05)
    queue: asyncio.Queue = asyncio.Queue()
    order = ReplyOrder(queue)
    for reply in (chunk(0), chunk(2), chunk(3, done=True)):
        order.put(reply)
    got = handed(queue)
    got += await eventually(lambda: handed(queue), "the chunks past the gap", timeout=5)
    assert seqs(got) == [(1, 0), (1, 2), (1, 3)]
    assert not order.put(chunk(1))  # (too late: the stream has ended)
