"""`create_app(settings)`: the edge's Litestar application, wired and nothing more."""

from __future__ import annotations

from typing import cast

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.types import Middleware

from gateway import chat_resume, legacy_completions, media_routes, native_api, openai_api
from gateway.admin.budget_objects import build_budget_routes
from gateway.admin.end_users import build_end_user_routes
from gateway.admin.keys import KeyService, build_key_routes
from gateway.admin.model_groups import build_model_group_routes
from gateway.admin.models import build_model_routes
from gateway.admin.org_members import build_org_member_routes
from gateway.admin.organizations import build_org_routes
from gateway.admin.reconciliation import build_reconciliation_routes
from gateway.admin.runtime_settings import build_settings_routes
from gateway.admin.spend import build_spend_routes
from gateway.admin.team_members import build_member_routes
from gateway.admin.teams import TeamService, build_team_routes
from gateway.admin.users import build_user_routes
from gateway.anthropic_messages.route import count_tokens, messages
from gateway.audio import routes as audio_routes
from gateway.auth_guard import FailedAuthGuard, failed_auth_middleware
from gateway.batches import batch_routes, files_routes
from gateway.batches.service import Batches
from gateway.console.routes import build_console_routes
from gateway.console.sso_routes import console_sso
from gateway.deployment_health import build_deployment_health_routes
from gateway.edge import Edge
from gateway.errors import EXCEPTION_HANDLERS
from gateway.health import build_health_routes
from gateway.job_takeover import JobTakeover
from gateway.metrics import metrics
from gateway.openapi import build_openapi_routes
from gateway.pipeline import Pipeline
from gateway.request_ids import request_id_hook
from gateway.responses import retrieval
from gateway.responses.route import RESPONSES, responses
from gateway.settings import EdgeSettings
from gateway.stored_chat import routes as stored_chat_routes
from llmgw.contracts import JobKind


def cors_config(settings: EdgeSettings) -> CORSConfig | None:
    """CORS only when LLMGW_CORS_ORIGINS names origins: off, browsers get no cross-origin access.
    The middleware wraps the whole app, so the raw ASGI routes are covered too; `x-request-id`
    and `retry-after` are exposed so browser clients can read them."""
    if not settings.cors_origins:
        return None
    return CORSConfig(allow_origins=list(settings.cors_origins), expose_headers=["x-request-id", "retry-after"])


def create_app(settings: EdgeSettings) -> Litestar:
    edge = Edge(settings)
    pipeline = Pipeline(edge, edge.router.settings)
    batches = Batches(edge, pipeline)
    # Background jobs whose edge died: carried on here (a background response, a resumable chat stream).
    takeover = JobTakeover(edge, pipeline, {JobKind.RESPONSE: RESPONSES, JobKind.CHAT: openai_api.RESUMABLE_CHAT})
    guard = FailedAuthGuard(settings.auth_failures_slow_after, settings.auth_failures_refuse_after)
    keys = KeyService(edge)
    teams = TeamService(edge, keys)
    sso = console_sso(edge, keys, teams)  # None unless general_settings.ui_sso configures it
    admin_routes = [
        *build_key_routes(edge, keys),
        *build_user_routes(edge, keys),
        *build_team_routes(edge, keys, teams),
        *build_member_routes(edge, teams),
        *build_org_routes(edge, keys, teams.orgs),
        *build_org_member_routes(edge, teams.orgs),
        *build_settings_routes(edge, keys),
        *build_model_routes(edge),
        *build_model_group_routes(edge),
        *build_spend_routes(edge, keys),
        *build_reconciliation_routes(edge),
        *build_end_user_routes(edge),
        *build_budget_routes(edge),
    ]
    app = Litestar(
        route_handlers=[
            *openai_api.ROUTES,
            *chat_resume.ROUTES,
            *legacy_completions.ROUTES,
            *media_routes.ROUTES,
            messages,
            count_tokens,
            responses,
            *retrieval.ROUTES,
            *stored_chat_routes.ROUTES,
            *files_routes.ROUTES,
            *batch_routes.ROUTES,
            *audio_routes.ROUTES,
            *native_api.ROUTES,
            *build_health_routes(edge),
            *([metrics] if settings.metrics else []),
            *build_deployment_health_routes(edge),
            *admin_routes,
            *build_openapi_routes(settings),
            *build_console_routes(edge, sso),
            *(sso.routes() if sso is not None else []),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[edge.start, batches.start, takeover.start],
        on_shutdown=[takeover.stop, batches.stop, edge.stop, *([sso.close] if sso is not None else [])],
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        openapi_config=None,  # the hand-built document of gateway/openapi.py is served instead
        cors_config=cors_config(settings),
        before_send=[request_id_hook(settings.metrics)],
        # (plain-dict ASGI, see gateway/asgi_io); a console session started on another edge is read first
        middleware=[cast("Middleware", failed_auth_middleware(guard)), cast("Middleware", edge.console.middleware)],
        debug=False,
    )
    app.state.edge = edge
    app.state.pipeline = pipeline
    app.state.batches = batches
    return app
