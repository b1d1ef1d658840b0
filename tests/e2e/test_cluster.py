"""llmgw on a 3-node NATS cluster (loopback) that loses the node leading its request stream.

The scenario is bench/cluster.py's (shorter): streams, KV buckets and object stores with 3
replicas, two edges, two workers and metering as separate processes, each given the three server
URLs; clients load both edges at a steady pace; the request stream's leader is killed (SIGKILL),
the load goes on until requests succeed again, the node is started again and rejoins.
"""

from __future__ import annotations

import uuid

import pytest

from bench.cluster import REPLICAS, run_scenario

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(300)
async def test_losing_the_request_streams_leader_loses_no_request_and_heals_by_itself(tmp_path):
    prefix = f"cl{uuid.uuid4().hex[:8]}"
    outcome = await run_scenario(tmp_path, prefix, before=3.0, after=6.0, clients=4)

    # Every stream llmgw made (request, usage, alerts, response events; every KV bucket and object
    # store) has the configured replicas: the kill cost no data.
    assert len(outcome.stream_replicas) >= 10, outcome.stream_replicas
    assert set(outcome.stream_replicas.values()) == {REPLICAS}, outcome.stream_replicas

    # No accepted request lost: every 200 whole; every refusal a clean, retryable 503.
    assert outcome.answered and not outcome.others, outcome.report()
    assert all(a.whole for a in outcome.answered), outcome.report()
    assert all(a.whole for a in outcome.unavailable), outcome.report()
    # Refused only while the stream had no leader: answered after the kill (a request in flight at
    # the kill may be one of them), begun before requests succeeded again.
    healed_at = outcome.killed_at + outcome.heal_s()
    assert all(outcome.killed_at <= a.ended and a.began <= healed_at for a in outcome.unavailable), outcome.report()

    # One usage row per answered request (none lost, none doubled); no refused request run after all.
    assert outcome.answered_rows() == (len(outcome.answered), 0, 0), outcome.report()
    assert outcome.refused_but_run() == 0, outcome.report()

    # Healed without restarting llmgw: requests succeed after the kill, and after the node's
    # restart, which made it a current replica of the request stream again.
    assert outcome.processes_alive, outcome.report()
    assert any(a.began > outcome.killed_at for a in outcome.answered)
    assert any(a.began > outcome.restarted_at + outcome.rejoin_s for a in outcome.answered), outcome.report()
    assert outcome.replicas_current == REPLICAS - 1, outcome.report()
    # The edges' KV watches outlived the streams' leader changes: a key made on one edge after
    # the kill is taken by the other.
    assert outcome.key_seen_s != float("inf"), outcome.report()
