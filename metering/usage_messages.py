"""The usage events of one usage-stream message: one `UsageEvent` (the edge's refusals, and what
older workers published) or a worker's `UsageBatch`, each event placed by (stream sequence, index
in the message) - the order the budget ledgers settle them in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from llmgw.contracts import TRACEPARENT_HEADER, Subjects, UsageEvent, decode_usage_message
from metering.rows import usage_problem


class HeldEvent(NamedTuple):
    seq: int  # usage-stream sequence of the message it came in
    position: int  # its index in that message (0 for a single event)
    event: UsageEvent
    traceparent: str | None  # the request's trace context, if it was traced


def message_events(
    subjects: Subjects, subject: str, seq: int, data: bytes, headers: Mapping[str, str] | None
) -> tuple[list[HeldEvent], list[str]]:
    """The valid events of a message, and what is wrong with each of the others. Raises
    msgspec.DecodeError if the message is no usage message at all."""
    traceparent = (headers or {}).get(TRACEPARENT_HEADER)
    held: list[HeldEvent] = []
    problems: list[str] = []
    for index, (event, traced) in enumerate(decode_usage_message(subject == subjects.usage_batch, data, traceparent)):
        problem = usage_problem(event)
        if problem is None:
            held.append(HeldEvent(seq, index, event, traced))
        else:
            problems.append(f"{event.request_id}: {problem}")
    return held, problems
