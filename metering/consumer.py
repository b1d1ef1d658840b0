"""The usage consumer: JetStream usage events -> batched inserts into ClickHouse.

A batch is acked only after its insert returned. While ClickHouse fails the batch is held and
retried with backoff, its messages kept from redelivery with `in_progress()`. A redelivery that
still happens (a crash between insert and ack) is dropped by the store's request_id check, so
every event lands exactly once. A message that is not a valid usage event is logged and
terminated: it would never get better.

Budget ledgers (metering/ledgers.py) are settled before the insert, and only the copy of a request
that is not in ClickHouse yet adds its cost: a later copy of a stored request (published again
after JetStream's de-duplication window) adds nothing, and a redelivery of a settled but not yet
inserted message is skipped by the ledgers' `applied_seq`. That rule needs each ledger to see
events in stream order, so at start the messages a crashed predecessor left unacked are read from
the stream and settled first (metering/recovery.py), before anything newer.

A message holds one event or a worker's batch of them (metering/usage_messages.py); each event is
placed by (stream sequence, index in its message), and a message is always held, settled and acked
whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from llmgw.bus import ensure_pull_consumer, ensure_usage_stream
from llmgw.contracts import Subjects
from llmgw.tracing import start_tracing
from metering import metrics
from metering.insert_spans import record_insert_spans
from metering.ledgers import LedgerSettler
from metering.recovery import unacked_events
from metering.store import UsageStore
from metering.usage_messages import HeldEvent, message_events

log = structlog.get_logger()

T = TypeVar("T")

ACK_WAIT = 30.0  # seconds JetStream waits for an ack (or an in_progress) before redelivering
IDLE_FETCH = 30.0  # seconds a fetch waits for the first event while none is held (a stop cuts it short)
FETCH_RETRY = 0.5  # seconds between attempts when the bus is unreachable
MAX_BACKOFF = 10.0  # insert retries back off up to this


class UsageConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        subjects: Subjects,
        store: UsageStore,
        *,
        batch_size: int,
        flush_interval: float,
        stream_max_age: float,
        ack_wait: float = ACK_WAIT,
        ledgers: LedgerSettler | None = None,
        tracing: bool = False,
    ) -> None:
        self._js = js
        self._subjects = subjects
        self._store = store
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._stream_max_age = stream_max_age
        self._ack_wait = ack_wait
        self._ledgers = ledgers
        self._sub: JetStreamContext.PullSubscription | None = None
        self._needs_setup = False
        self._wake = asyncio.Event()  # set by request_setup(): a waiting fetch gives way
        self._msgs: list[Msg] = []
        self._events: list[HeldEvent] = []  # the events of the held messages
        self._tracer = start_tracing("metering", tracing)
        self._oldest: float | None = None  # when the oldest held event was published
        metrics.LAG.set_function(self.lag)

    def request_setup(self) -> None:
        """Declare the stream and consumer again before the next fetch (after a reconnect the
        server may have lost them)."""
        self._needs_setup = True
        self._wake.set()

    async def setup(self) -> None:
        """Declare the stream and the durable consumer (idempotent) and bind to it."""
        await ensure_usage_stream(self._js, self._subjects, self._stream_max_age)
        await ensure_pull_consumer(
            self._js,
            self._subjects.usage_stream,
            self._subjects.metering_consumer,
            self._subjects.usage_wildcard,
            ack_wait=self._ack_wait,
            max_ack_pending=2 * self._batch_size,
        )
        await self.close()
        self._sub = await self._js.pull_subscribe_bind(self._subjects.metering_consumer, stream=self._subjects.usage_stream)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then flush what is held and return."""
        if self._ledgers is not None:
            await self._recover(stop)
        deadline = 0.0  # when the held batch must be flushed
        while not stop.is_set():
            now = time.monotonic()
            if self._events and (len(self._events) >= self._batch_size or now >= deadline):
                await self._flush(stop)
                continue
            if self._needs_setup and not await self._setup_again(stop):
                continue
            if self._sub is None:  # (setup() binds it before run())
                raise RuntimeError("the usage consumer is not set up")
            try:
                msgs = await self._fetch(stop, deadline - now if self._events else None)
            except TimeoutError:
                continue
            except Exception as exc:
                log.warning("usage_fetch_failed", error=str(exc) or type(exc).__name__)
                await _sleep_unless(stop, FETCH_RETRY)
                self._needs_setup = True
                continue
            if not self._events:
                deadline = time.monotonic() + self._flush_interval
            for msg in msgs:
                await self._take(msg)
        if self._events:
            await self._flush(stop)

    async def _fetch(self, stop: asyncio.Event, wait: float | None) -> list[Msg]:
        """The next events: with none held (`wait` None) one long pull for the first event, which
        returns the moment it arrives; with some held, the rest of a batch until `wait` runs out.

        A stop or a request_setup() ends the wait at once; what the server still delivers to the
        dropped pull stays unacked and comes back (ack_wait, or the next start's recovery)."""
        assert self._sub is not None
        if wait is None:
            fetch = self._sub.fetch(1, timeout=IDLE_FETCH)
        else:
            fetch = self._sub.fetch(self._batch_size - len(self._events), timeout=max(wait, 0.01))
        task = asyncio.ensure_future(fetch)
        stopped = asyncio.ensure_future(stop.wait())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({task, stopped, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            woken.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})  # (a fetch that finished meanwhile keeps its messages)
        self._wake.clear()
        if task.cancelled():
            return []
        return task.result()

    async def close(self) -> None:
        """Drop the pull subscription. Call it before `nc.drain()`: the subscription's queue may
        hold status messages nobody reads, and draining would wait on them (up to 30 s)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                pass

    async def _setup_again(self, stop: asyncio.Event) -> bool:
        try:
            await self.setup()
        except Exception as exc:
            log.warning("usage_consumer_setup_failed", error=str(exc) or type(exc).__name__)
            await _sleep_unless(stop, FETCH_RETRY)
            return False
        self._needs_setup = False
        return True

    async def _take(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        try:
            held, problems = message_events(self._subjects, msg.subject, seq, msg.data, msg.headers)
        except msgspec.DecodeError as exc:
            held, problems = [], [str(exc)]
        for problem in problems:  # (the valid events of a batch are kept)
            log.warning("usage_event_rejected", subject=msg.subject, seq=seq, error=problem)
        if held:
            if self._oldest is None:
                self._oldest = msg.metadata.timestamp.timestamp() if msg.metadata.timestamp else time.time()
            self._msgs.append(msg)
            self._events.extend(held)
            return
        try:
            await msg.term()
        except Exception as exc:
            log.warning("usage_term_failed", error=str(exc) or type(exc).__name__)

    async def _flush(self, stop: asyncio.Event) -> None:
        """Insert the held batch and ack it; retry while ClickHouse fails, unless stopping."""
        attempt = 0
        while True:
            started = time.perf_counter()
            started_ns = time.time_ns()
            try:
                inserted, ledgers = await self._keeping_alive(self._store_batch(self._events))
            except Exception as exc:
                attempt += 1
                error = str(exc) or type(exc).__name__
                if stop.is_set():
                    log.warning("usage_batch_returned", rows=len(self._events), error=error)
                    await self._settle(ack=False)
                    return
                delay = min(0.5 * 2 ** (attempt - 1), MAX_BACKOFF)
                log.warning("usage_insert_failed", rows=len(self._events), attempt=attempt, retry_in=delay, error=error)
                await self._hold(stop, delay)
                continue
            rows = len(self._events)
            if self._tracer is not None:
                record_insert_spans(self._tracer, self._events, started_ns, inserted)
            await self._settle(ack=True)
            log.info(
                "usage_batch_flushed",
                rows=inserted,
                duplicates=rows - inserted,
                ledgers=ledgers,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            return

    async def _store_batch(self, batch: list[HeldEvent]) -> tuple[int, int]:
        """Settle the ledgers, then insert the new rows; (rows inserted, ledgers written).

        `batch` holds whole messages. Idempotent: running it again on the same batch (a retry, a
        redelivery) changes nothing.
        """
        batch = sorted(batch, key=lambda b: (b.seq, b.position))
        fresh = await asyncio.to_thread(self._store.fresh_events, [held.event for held in batch])
        written = 0
        if self._ledgers is not None:
            stored = {id(event) for event in fresh}  # the first copy of each new request_id
            written = await self._ledgers.settle([(h.seq, h.position, h.event, id(h.event) in stored) for h in batch])
        started = time.perf_counter()
        inserted = await asyncio.to_thread(self._store.insert_fresh, fresh)
        metrics.INSERT_DURATION.observe(time.perf_counter() - started)
        metrics.ROWS.inc(inserted)
        return inserted, written

    async def _keeping_alive(self, work: Awaitable[T]) -> T:
        """Run `work`, telling JetStream we are on the held messages while it runs."""
        task = asyncio.ensure_future(work)
        while True:
            done, _ = await asyncio.wait({task}, timeout=self._ack_wait / 3)
            if done:
                return task.result()
            await self._touch()

    async def _recover(self, stop: asyncio.Event) -> None:
        """Settle and store what a predecessor left unacked, before anything newer (see above)."""
        attempt = 0
        while not stop.is_set():
            try:
                batches = await unacked_events(self._js, self._subjects, self._batch_size)
                for batch in batches:
                    inserted, ledgers = await self._store_batch(batch)
                    log.info("usage_unacked_recovered", events=len(batch), rows=inserted, ledgers=ledgers)
                return
            except Exception as exc:
                attempt += 1
                delay = min(0.5 * 2 ** (attempt - 1), MAX_BACKOFF)
                log.warning("usage_recovery_failed", attempt=attempt, retry_in=delay, error=str(exc) or type(exc).__name__)
                await _sleep_unless(stop, delay)

    async def _hold(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait `seconds` (less if stopping), keeping the held messages from redelivery."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            await self._touch()
            await _sleep_unless(stop, min(left, self._ack_wait / 3))

    async def _touch(self) -> None:
        for msg in self._msgs:
            try:
                await msg.in_progress()
            except Exception:
                break

    async def _settle(self, ack: bool) -> None:
        """Ack (or nak: give back for redelivery) every held message, then forget the batch."""
        try:
            for msg in self._msgs:
                await (msg.ack() if ack else msg.nak())
        except Exception as exc:
            log.warning("usage_ack_failed", error=str(exc) or type(exc).__name__)
        self._msgs.clear()
        self._events.clear()
        self._oldest = None

    def lag(self) -> float:
        """Seconds the oldest held event has waited since it was published (0: none held)."""
        oldest = self._oldest
        return 0.0 if oldest is None else max(time.time() - oldest, 0.0)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
