"""Queries run on a chdb database of their own: every migration applied and a few usage rows
stored through metering's store (so the rollups hold them too), in a process of its own (chdb
opens one data directory per process).

    python -m tests.integration.chdb_queries DIR < queries.json

Reads a JSON list of SQL texts; its last line of output is a JSON list with, for each, its
{"columns", "types" (of the first row's values), "rows" (how many)} or its {"error"}.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from llmgw.contracts import UsageEvent
from metering.store import UsageStore

TEAMS = ("team-a", "team-b", None)
MODELS = ("gpt-4", "claude")


def sample_events(now: float) -> list[UsageEvent]:
    """Requests of two teams (and none), two keys, two model groups and some tags, over the last
    day and a half; one of them failed."""
    events = []
    for i in range(12):
        events.append(
            UsageEvent(
                request_id=uuid.uuid4().hex,
                ts=round(now - i * 3 * 3600, 3),
                key_hash=f"kh-{i % 2}",
                key_alias=f"key-{i % 2}",
                team_id=TEAMS[i % 3],
                user_id=f"user-{i % 2}",
                tags=["batch"] if i % 4 == 0 else [],
                operation="chat",
                model_group=MODELS[i % 2],
                deployment_id=f"dep-{i % 2}",
                provider="openai",
                upstream_model="gpt-4o",
                prompt_tokens=10 + i,
                completion_tokens=20 + i,
                cost=0.001 * (i + 1),
                latency_ms=100.0 + i,
                ttft_ms=20.0 if i % 2 else None,
                status="upstream_error" if i == 5 else "success",
                http_status=500 if i == 5 else 200,
                usage_source="provider",
                stream=bool(i % 2),
                worker_id="w1",
            )
        )
    return events


def main(directory: str) -> int:
    queries = json.load(sys.stdin)
    store = UsageStore.open(f"chdb://{Path(directory) / 'ch'}")
    try:
        store.migrate(0)
        store.insert_usage(sample_events(time.time()))
        results = []
        for sql in queries:
            try:
                columns, rows = store.query(sql)
            except Exception as error:  # the test reads the message
                results.append({"error": str(error)})
                continue
            types = [type(v).__name__ for v in rows[0]] if rows else []
            results.append({"columns": columns, "types": types, "rows": len(rows)})
    finally:
        store.close()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
