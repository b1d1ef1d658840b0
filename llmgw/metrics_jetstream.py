"""JetStream consumer depth as metrics, asked of the server when Prometheus scrapes.

The scrape runs in prometheus_client's HTTP thread; the consumer's info is fetched on the
process's event loop (one request per consumer, bounded by a timeout), so nothing runs between
scrapes and the request path is untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from nats.js import JetStreamContext
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

SCRAPE_TIMEOUT = 2.0


class ConsumerDepth(Collector):
    """`llmgw_jetstream_pending_messages` and `llmgw_jetstream_redelivered_messages` of the
    named (stream, durable consumer) pairs."""

    def __init__(self, js: JetStreamContext, loop: asyncio.AbstractEventLoop, consumers: Iterable[tuple[str, str]]) -> None:
        self.js = js
        self.loop = loop
        self.consumers = list(consumers)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "llmgw_jetstream_pending_messages",
            "Messages of a stream not yet delivered to the consumer.",
            labels=["stream", "consumer"],
        )
        redelivered = GaugeMetricFamily(
            "llmgw_jetstream_redelivered_messages",
            "Messages delivered to the consumer more than once and not yet acked.",
            labels=["stream", "consumer"],
        )
        for stream, consumer in self.consumers:
            try:
                future = asyncio.run_coroutine_threadsafe(self.js.consumer_info(stream, consumer), self.loop)
                info = future.result(SCRAPE_TIMEOUT)
            except Exception:  # (the bus away, the consumer not made yet: no sample this scrape)
                continue
            pending.add_metric([stream, consumer], float(info.num_pending or 0))
            redelivered.add_metric([stream, consumer], float(info.num_redelivered or 0))
        yield pending
        yield redelivered

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
