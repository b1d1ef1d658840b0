"""Wiring of a worker process: bus, consumers, handlers, presence, and a draining shutdown."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from llmgw import bus
from llmgw.blobs import Blobs, open_blobs
from llmgw.catalog import PROVIDERS
from llmgw.contracts import Priority, Subjects, WorkerHeartbeat, decode_cancel, decode_resend_replies, encode_internal
from llmgw.interactive_load import InteractiveTraffic
from llmgw.metrics import serve_metrics
from llmgw.metrics_jetstream import ConsumerDepth
from llmgw.routing import CooldownBoard, router_settings
from llmgw.secrets import CredentialCipher
from workers import metrics as worker_metrics
from workers.credentials import DeploymentTable
from workers.handler import RequestHandler
from workers.http_client import UpstreamClient
from workers.provider_batches import ProviderBatches
from workers.providers import build_providers, family_class
from workers.puller import BatchPuller, ContinuousPuller
from workers.recent_replies import RecentReplies
from workers.settings import WorkerSettings

log = structlog.get_logger()


async def run_worker(settings: WorkerSettings, stop: asyncio.Event) -> None:
    subjects = Subjects(settings.bus.prefix)
    in_flight: dict[str, asyncio.Task] = {}
    batch_in_flight: set[str] = set()  # (the keys of in_flight that are batch requests)
    pullers: list[ContinuousPuller] = []
    replies: list[RecentReplies] = []  # (the handler's, once it is made)

    async def on_disconnect() -> None:
        for r in replies:
            r.disconnected()

    async def on_reconnect() -> None:
        for p in pullers:
            p.reset()
        for r in replies:
            r.reconnected()  # the answers that may have died with the node

    nc = await bus.connect(
        settings.bus, name=f"llmgw-worker-{settings.worker_id}", on_disconnect=on_disconnect, on_reconnect=on_reconnect
    )
    js = bus.jetstream(nc, settings.bus)
    await bus.ensure_request_stream(js, subjects)
    await bus.ensure_usage_stream(js, subjects, settings.usage_retention_days * 86400.0)
    deployments = DeploymentTable(settings.config, CredentialCipher(settings.secret))
    await deployments.start(js, subjects)
    client = UpstreamClient(settings.upstream_connections)
    families = {PROVIDERS[provider].family for provider in deployments.providers}
    providers = build_providers(client, settings.default_timeout, settings.connect_timeout, families)
    publisher = bus.AckedPublisher(nc)
    await publisher.start()
    cooldowns = CooldownBoard(subjects, router_settings(settings.config))
    await cooldowns.start(nc)
    finishing = settings.on_client_disconnect == "finish"
    blobs = Blobs(await open_blobs(js, subjects.blobs_bucket), nc.max_payload)
    handler = RequestHandler(nc, publisher, subjects, settings, providers, deployments, cooldowns, blobs)
    replies.append(handler.replies)
    handoffs = ProviderBatches(nc, subjects, deployments, providers, handler.usage.batcher, settings.worker_id)
    worker_metrics.watch(lambda: len(in_flight))
    depth = ConsumerDepth(js, asyncio.get_running_loop(), [])  # (the request consumers, as they are made)
    if settings.metrics_port is not None:
        REGISTRY.register(depth)
        REGISTRY.register(worker_metrics.Cooldowns(cooldowns))
        port = serve_metrics(settings.metrics_host, settings.metrics_port)
        log.info("metrics_serving", url=f"http://{settings.metrics_host}:{port}/metrics")

    # Interactive traffic on every edge lately: the batch pullers yield to it.
    traffic = InteractiveTraffic(subjects, f"worker-{settings.worker_id}")
    await traffic.start(nc, publish=False)

    def on_message(msg: Msg, batch: bool = False) -> None:
        task = asyncio.create_task(handler.handle(msg))
        key = msg.reply  # unique per delivery; the request id is known after decoding
        in_flight[key] = task
        if batch:
            batch_in_flight.add(key)

        def done(_: asyncio.Task) -> None:
            in_flight.pop(key, None)
            batch_in_flight.discard(key)
            if finishing:
                handler.client_gone.discard(task.get_name())
            for p in pullers:
                p.capacity_freed()

        task.add_done_callback(done)

    async def on_cancel(msg: Msg) -> None:
        """The edge says the client of a stream went away: stop its upstream call, or (finish)
        let it run to its end, to be metered with the provider's count and recorded as cancelled."""
        request_id = decode_cancel(msg.data).request_id
        serving = False
        for task in list(in_flight.values()):
            if task.get_name() == request_id:
                serving = True
                if finishing:
                    handler.client_gone.add(request_id)
                else:
                    task.cancel()
        if not serving:  # still in the queue (a background response cancelled before it started)
            handler.cancelled_early.add(request_id)

    served: list[str] = []

    async def serve(provider: str) -> None:
        """Pull `provider`'s requests (both queues) from now on."""
        if provider in served:
            return
        served.append(provider)
        family = PROVIDERS[provider].family
        if family not in providers:
            providers[family] = family_class(family)(client, settings.default_timeout, settings.connect_timeout)
        durable = subjects.worker_consumer(provider)
        await bus.ensure_pull_consumer(
            js,
            subjects.requests_stream,
            durable,
            subjects.request(provider),
            ack_wait=settings.ack_wait,
            max_ack_pending=max(1024, settings.concurrency * 8),
        )
        interactive = ContinuousPuller(
            nc, subjects.requests_stream, durable, settings.concurrency, lambda: len(in_flight), on_message
        )
        batch_durable = subjects.worker_consumer(provider, Priority.BATCH)
        await bus.ensure_pull_consumer(
            js,
            subjects.requests_stream,
            batch_durable,
            subjects.request(provider, Priority.BATCH),
            ack_wait=settings.ack_wait,
            max_ack_pending=max(1024, settings.concurrency * 8),
        )

        depth.consumers.extend([(subjects.requests_stream, durable), (subjects.requests_stream, batch_durable)])

        async def interactive_waiting(durable: str = durable) -> bool:
            return (await js.consumer_info(subjects.requests_stream, durable)).num_pending > 0

        batch = BatchPuller(
            nc,
            subjects.requests_stream,
            batch_durable,
            settings.concurrency,
            lambda: len(in_flight),
            lambda msg: on_message(msg, batch=True),
            interactive_waiting=interactive_waiting,
            traffic=traffic,
            batch_in_use=lambda: len(batch_in_flight),
            yield_lines=settings.batch_yield_lines,
        )
        for p in (interactive, batch):
            pullers.append(p)
            await p.start()
        await handoffs.serve(provider)  # batches handed to the provider's own batch API

    serving: set[asyncio.Task] = set()

    def on_deployments_changed() -> None:
        """A deployment added at run time may be of a provider this worker does not pull yet."""
        for provider in sorted(deployments.providers - set(served)):
            task = asyncio.create_task(serve(provider), name=f"serve:{provider}")
            serving.add(task)
            task.add_done_callback(serving.discard)

    cancel_sub = await nc.subscribe(subjects.cancel, cb=on_cancel)

    async def on_resend(msg: Msg) -> None:
        await handler.replies.resend_to(decode_resend_replies(msg.data).reply_subject)

    resend_sub = await nc.subscribe(subjects.resend_replies, cb=on_resend)
    for provider in sorted(deployments.providers):
        await serve(provider)
    deployments.listeners.append(on_deployments_changed)
    on_deployments_changed()  # (one learnt between the table's start and now)
    presence = asyncio.create_task(_announce(nc, subjects, settings, served, lambda: len(in_flight)))
    log.info("worker_started", worker_id=settings.worker_id, providers=list(served), concurrency=settings.concurrency)
    gc.freeze()  # what exists now lives as long as the process: collections only walk newer objects

    await stop.wait()
    log.info("worker_draining", in_flight=len(in_flight))
    # Take nothing new: stop asking, and drop the inboxes at once. The server still holds this
    # worker's open pull requests (up to PULL_EXPIRES s); with no interest left on their inbox it
    # discards them instead of delivering requests here, which would only be given back (nak) and
    # counted as a second delivery. A request already on its way is lost with the inbox and
    # redelivered after ack_wait.
    deployments.listeners.clear()
    for task in list(serving):
        task.cancel()
    for p in pullers:
        await p.stop()
    for p in pullers:
        await p.close()
    try:
        await nc.flush(timeout=2)  # the server has the unsubscribes before anything else happens
    except Exception as exc:
        log.warning("worker_flush_failed", error=str(exc) or type(exc).__name__)
    presence.cancel()
    if in_flight:
        await asyncio.wait(list(in_flight.values()))
    await handoffs.stop()
    await cancel_sub.unsubscribe()
    await resend_sub.unsubscribe()
    handler.replies.stop()
    await traffic.stop()
    await publisher.stop()
    await deployments.stop()
    await nc.drain()
    await client.aclose()
    log.info("worker_stopped", worker_id=settings.worker_id)


async def _announce(
    nc: Client, subjects: Subjects, settings: WorkerSettings, providers: list[str], in_flight: Callable[[], int]
) -> None:
    """Presence for the edge's readiness check: which providers have a live worker."""
    while True:
        beat = encode_internal(WorkerHeartbeat(settings.worker_id, list(providers), in_flight(), settings.concurrency))
        for provider in list(providers):
            try:
                await nc.publish(subjects.heartbeat(provider), beat)
            except Exception:
                break
        await asyncio.sleep(settings.heartbeat_interval)
