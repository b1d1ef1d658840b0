"""The pace of an edge's batch lines: with interactive traffic present, at most `yield_lines` in
flight (the next starts when one ends, after its pause); with none, every line asked for starts.
The traffic is the edge's own count (llmgw/interactive_load.py), fed as the dispatcher feeds it."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.batches.pace import MAX_PAUSE, BatchPace
from llmgw.contracts import Subjects
from llmgw.interactive_load import InteractiveTraffic
from tests.waiting import eventually

pytestmark = pytest.mark.unit


def never() -> bool:
    return False


async def test_with_interactive_traffic_one_line_runs_at_a_time() -> None:
    traffic = InteractiveTraffic(Subjects("unitpace"), "edge-a", quiet_after=60.0)
    traffic.arrived()  # an interactive request published on this edge
    pace = BatchPace(lambda: traffic, yield_lines=1, yield_pause=0.0)
    assert pace.yielding()
    turns = [asyncio.create_task(pace.turn(never)) for _ in range(3)]
    for started in (1, 2, 3):
        await eventually(lambda n=started: sum(t.done() for t in turns) == n, f"{started} lines started")
        for _ in range(5):
            await asyncio.sleep(0)  # (the others run, and must not start while one is in flight)
        assert sum(t.done() for t in turns) == started and pace.in_flight == 1
        pace.ended()
    assert all(t.result() for t in turns) and pace.in_flight == 0


async def test_with_no_interactive_traffic_every_line_starts() -> None:
    traffic = InteractiveTraffic(Subjects("unitpace"), "edge-b")
    pace = BatchPace(lambda: traffic, yield_lines=1, yield_pause=0.002)
    assert not pace.yielding()
    assert all([await pace.turn(never) for _ in range(8)])
    assert pace.in_flight == 8


async def test_the_pause_grows_with_the_interactive_rate_up_to_its_bound() -> None:
    traffic = InteractiveTraffic(Subjects("unitpace"), "edge-c", quiet_after=60.0)
    pace = BatchPace(lambda: traffic, yield_lines=1, yield_pause=0.002)
    for _ in range(50):
        traffic.arrived()
    assert traffic.rate() == 50
    assert await pace.turn(never)
    pace.ended()  # 50 interactive requests in the last second: 100 ms before the next line
    assert pace._next_start - time.monotonic() == pytest.approx(0.1, abs=0.05)
    assert await pace.turn(lambda: True) is False  # (stopped while it waited: nothing counted)
    assert pace.in_flight == 0
    for _ in range(5000):
        traffic.arrived()
    pace.in_flight += 1
    pace.ended()  # 5,050 of them: 10 s, held to MAX_PAUSE
    assert pace._next_start - time.monotonic() == pytest.approx(MAX_PAUSE, abs=0.05)
