"""The metering process: usage events from JetStream into ClickHouse, the SQL read service, and the
reconciler (the providers' own usage and cost reports against what was metered) when it is set."""

from __future__ import annotations

import asyncio
import gc

import structlog
from nats.aio.client import Client
from prometheus_client import REGISTRY

from llmgw.bus import connect, jetstream
from llmgw.contracts import Subjects
from llmgw.metrics import serve_metrics
from llmgw.metrics_jetstream import ConsumerDepth
from metering.consumer import UsageConsumer
from metering.ledgers import LedgerSettler
from metering.query_service import QueryService
from metering.reconcile.service import Reconciler
from metering.resident import page_out_engine
from metering.settings import MeteringSettings, redact_dsn
from metering.store import UsageStore

log = structlog.get_logger()

SECONDS_PER_DAY = 86400.0


async def run_metering(settings: MeteringSettings, stop: asyncio.Event) -> None:
    """Run until `stop` is set, then flush the held batch, drain the bus and close the store."""
    subjects = Subjects(settings.bus.prefix)
    store = await asyncio.to_thread(UsageStore.open, settings.clickhouse_url, settings.engine_options)
    try:
        applied = await asyncio.to_thread(store.migrate, settings.usage_ttl_days, settings.clickhouse_cluster)
        consumer: UsageConsumer | None = None

        async def on_reconnect() -> None:
            if consumer is not None:
                consumer.request_setup()

        nc = await connect(settings.bus, name="llmgw-metering", on_reconnect=on_reconnect)
        retention = settings.usage_retention_days * SECONDS_PER_DAY
        ledgers = LedgerSettler(jetstream(nc, settings.bus), subjects, alerts_max_age=retention)
        consumer = UsageConsumer(
            jetstream(nc, settings.bus),
            subjects,
            store,
            batch_size=settings.batch_size,
            flush_interval=settings.flush_interval,
            stream_max_age=retention,
            ack_wait=settings.ack_wait,
            ledgers=ledgers,
            tracing=settings.tracing,
        )
        try:
            await consumer.setup()
            await ledgers.setup()
            await QueryService(nc, subjects, store).start()
            if settings.metrics_port is not None:
                depth = ConsumerDepth(
                    jetstream(nc, settings.bus), asyncio.get_running_loop(), [(subjects.usage_stream, subjects.metering_consumer)]
                )
                REGISTRY.register(depth)
                port = serve_metrics(settings.metrics_host, settings.metrics_port)
                log.info("metrics_serving", url=f"http://{settings.metrics_host}:{port}/metrics")
            log.info(
                "metering_ready",
                clickhouse=redact_dsn(settings.clickhouse_url),
                migrations_applied=applied,
                prefix=subjects.prefix,
            )
            if settings.page_out_engine:
                paged_out = await asyncio.to_thread(page_out_engine)
                log.info("engine_paged_out", mib=paged_out // (1024 * 1024))
            reconciling: asyncio.Task[None] | None = None
            if settings.reconcile is not None:
                reconciler = Reconciler(settings.reconcile, jetstream(nc, settings.bus), subjects, store)
                reconciling = asyncio.create_task(reconciler.run(stop), name="reconciler")
                log.info("reconciler_started", providers=[p.provider for p in settings.reconcile.providers])
            gc.freeze()  # what exists now lives as long as the process: collections only walk newer objects
            try:
                await consumer.run(stop)
            finally:
                if reconciling is not None:
                    reconciling.cancel()
                    await asyncio.gather(reconciling, return_exceptions=True)
        finally:
            await consumer.close()
            await _close_bus(nc)
    finally:
        await asyncio.to_thread(store.close)
    log.info("metering_stopped")


async def _close_bus(nc: Client) -> None:
    """Drain: answer the queries in flight and send the last acks; just close if that fails."""
    try:
        await nc.drain()
    except Exception as exc:
        log.warning("nats_drain_failed", error=str(exc) or type(exc).__name__)
        await nc.close()
