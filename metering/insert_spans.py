"""The metering span of each request (when tracing is on, see llmgw/tracing.py): the insert of the
batch that stored its usage row, a child of the worker's span named by the event's `traceparent`
(the header of a single-event message, the batch's own list for a worker's batch). A batch's spans
are made after its insert returned, with its start and end."""

from __future__ import annotations

import time

from llmgw.tracing import Tracer, parent_context
from metering.usage_messages import HeldEvent


def record_insert_spans(tracer: Tracer, events: list[HeldEvent], started_ns: int, inserted: int) -> None:
    """One span per traced event of the batch just stored (events with no trace context: none)."""
    ended_ns = time.time_ns()
    for _, _, event, traceparent in events:
        parent = parent_context(traceparent)
        if parent is None:
            continue
        span = tracer.start_span(
            "INSERT usage",
            parent,
            start_ns=started_ns,
            attributes={
                "db.system.name": "clickhouse",
                "db.operation.name": "INSERT",
                "db.collection.name": "usage",
                "db.operation.batch.size": len(events),
                "llmgw.request_id": event.request_id,
                "llmgw.batch_inserted": inserted,
                "gen_ai.request.model": event.model_group,
                "gen_ai.usage.input_tokens": event.prompt_tokens,
                "gen_ai.usage.output_tokens": event.completion_tokens,
            },
        )
        span.end(ended_ns)
