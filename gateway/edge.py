"""The edge's parts, created by `create_app` and connected to the bus at startup."""

from __future__ import annotations

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from gateway import metrics
from gateway.access import ModelAccess
from gateway.auth import Authenticator
from gateway.background import BackgroundJobs
from gateway.budgets import BudgetGuard
from gateway.console.sessions import ConsoleSessions
from gateway.dispatcher import Dispatcher
from gateway.end_users import end_user_headers
from gateway.gateway_budget import gateway_limits
from gateway.identity import IdentityView, config_teams
from gateway.models_list import ModelListing
from gateway.presence import WorkerPresence
from gateway.ratelimits import RateLimiter
from gateway.responses.events import ResponseEvents
from gateway.responses.store import ResponseStore
from gateway.router import ModelRouter
from gateway.settings import EdgeSettings
from gateway.stored_chat.store import ChatCompletionStore
from llmgw import bus
from llmgw.blobs import Blobs, open_blobs
from llmgw.config import Deployment
from llmgw.contracts import Subjects
from llmgw.routing import CooldownBoard, router_settings
from llmgw.runtime_models import RuntimeModels
from llmgw.secret_check import check_secret_fingerprint
from llmgw.secrets import CredentialCipher, KeyHasher
from llmgw.tracing import stop_tracing

log = structlog.get_logger()


class Edge:
    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.subjects = Subjects(settings.bus.prefix)
        self.hasher = KeyHasher(settings.secret)
        self.cipher = CredentialCipher(settings.secret)
        self.identity = IdentityView(self.subjects, config_teams(settings.config.litellm_settings))
        self.auth = Authenticator(settings.config.master_key, self.hasher, self.identity)
        self.access = ModelAccess(settings.config.deployments)
        self.cooldowns = CooldownBoard(self.subjects, router_settings(settings.config))
        self.router = ModelRouter(settings.config.deployments, self.cooldowns.settings, self.cooldowns)
        self.models = ModelListing(self.router)  # what GET /v1/models lists
        # Deployments added at run time (/model/new): the tables above are rebuilt when they change.
        self.runtime_models = RuntimeModels(self.cipher)
        self.runtime_models.listeners.append(self._deployments_changed)
        self.budgets = BudgetGuard(
            self.subjects, settings.allow_unpriced_models, gateway_limits(settings.config.litellm_settings)
        )
        self.end_user_headers = end_user_headers(settings.config.general_settings)  # (gateway/end_users.py)
        self.responses = ResponseStore(self.subjects, settings.responses_retention_days)  # the Responses API's
        # Chat completions asked to be stored (`store: true`), kept as long as stored responses.
        self.chat_completions = ChatCompletionStore(self.subjects, settings.responses_retention_days)
        # Background responses: the jobs this edge runs, and the events of streamed ones.
        self.jobs = BackgroundJobs(self.subjects)
        self.response_events = ResponseEvents(self.subjects, settings.response_events_retention, settings.request_timeout)
        # Who is signed in to the admin console (/ui), in KV so every edge knows and an admin can end them.
        self.console = ConsoleSessions(self.subjects, self.hasher, settings.console_session_max_age)
        self.nc: Client | None = None
        self.js: JetStreamContext = None  # type: ignore[assignment]  # set in start()
        self.dispatcher: Dispatcher = None  # type: ignore[assignment]  # set in start()
        self.presence: WorkerPresence = None  # type: ignore[assignment]
        self.ratelimits: RateLimiter = None  # type: ignore[assignment]  # set in start()
        self.blobs: Blobs = None  # type: ignore[assignment]  # set in start()

    async def start(self) -> None:
        self.nc = await bus.connect(self.settings.bus, name="llmgw-edge")
        js = self.js = self.nc.jetstream()
        await check_secret_fingerprint(js, self.subjects, self.settings.secret)
        await bus.ensure_request_stream(js, self.subjects)
        await bus.ensure_usage_stream(js, self.subjects, self.settings.usage_retention_days * 86400.0)  # refusals
        self.blobs = Blobs(await open_blobs(js, self.subjects.blobs_bucket), self.nc.max_payload)
        await self.responses.start(js, self.nc.max_payload)
        await self.chat_completions.start(js, self.nc.max_payload)
        await self.response_events.start(js)
        await self.identity.start(js)
        await self.console.open(js)
        metrics.key_map_updated()  # (its initial values were read)
        self.identity.keys.listeners.append(metrics.key_map_seen)
        await self.runtime_models.start(js, self.subjects)
        await self.budgets.start(js)
        await self.cooldowns.start(self.nc)
        self.ratelimits = RateLimiter(js, self.subjects, fail_open=self.settings.ratelimit_fail_open)
        await self.ratelimits.start()
        self.dispatcher = Dispatcher(self.nc, self.subjects, self.settings.publish_timeout, self.blobs)
        await self.dispatcher.start()
        self.presence = WorkerPresence(self.nc, self.subjects, self.settings.worker_seen_within)
        await self.presence.start()
        await self.jobs.start(self.nc)
        log.info("edge_started", edge_id=self.dispatcher.edge_id, models=len(self.router.groups) + len(self.router.wildcards))

    def deployments(self) -> tuple[Deployment, ...]:
        """Every deployment served now: the config file's, then those added at run time."""
        return tuple(self.router.by_id.values())

    def deployment(self, deployment_id: str) -> Deployment | None:
        return self.router.by_id.get(deployment_id)

    def _deployments_changed(self) -> None:
        config = self.settings.config.deployments
        ids = {d.id for d in config}
        added = tuple(d for d in self.runtime_models.deployments.values() if d.id not in ids)
        deployments = config + added
        self.router.replace(deployments)
        self.access = ModelAccess(deployments)
        self.models = ModelListing(self.router, self.models.created)

    async def stop(self) -> None:
        """Leave the bus once the requests in flight are over (within the shutdown grace).

        Granian stops accepting connections on SIGTERM and lets open responses finish before this
        runs; what may still be in flight is a request whose client already went away (its worker
        is told to stop through the bus) or, past the grace, nothing: Granian kills the process."""
        if self.nc is not None:
            await self.jobs.stop(self.settings.shutdown_grace)  # background responses: the grace, then failed
            if self.dispatcher is not None and not await self.dispatcher.settled(self.settings.shutdown_grace):
                log.warning("edge_stopped_with_requests_in_flight", in_flight=self.dispatcher.in_flight)
            await self.identity.stop()
            await self.console.close()
            await self.runtime_models.stop()
            await self.budgets.stop()
            await self.cooldowns.stop()
            await self.ratelimits.stop()
            await self.dispatcher.stop()
            await self.nc.drain()
            self.nc = None
        stop_tracing()  # what spans are still queued are sent (see llmgw/tracing.py)

    async def readiness(self) -> tuple[bool, dict]:
        nats_ok = bool(self.nc and self.nc.is_connected)
        streams_ok = False
        if self.nc is not None and nats_ok:
            try:
                await self.nc.jetstream().stream_info(self.subjects.requests_stream)
                streams_ok = True
            except Exception:
                pass
        missing = self.presence.missing(self.settings.config.providers) if self.presence else ["?"]
        checks = {"nats": nats_ok, "streams": streams_ok, "workers": not missing, "providers_without_workers": missing}
        return nats_ok and streams_ok and not missing, checks
