"""The edge process's settings, parsed once in `__main__`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import msgspec

from gateway.console.sso_config import SsoSettings, sso_settings
from llmgw.config import ConfigError, GatewayConfig, load_config
from llmgw.secrets import server_secret
from llmgw.settings import BusSettings, bus_settings_from_env, env_bool, env_float, env_int, env_str
from llmgw.tracing import tracing_wanted

CONSOLE_SESSION_MAX_AGE = 43200.0  # seconds a console session lasts unless LLMGW_CONSOLE_SESSION_MAX_AGE says


class EdgeSettings(msgspec.Struct, frozen=True, kw_only=True):
    bus: BusSettings
    config: GatewayConfig
    secret: bytes  # LLMGW_SECRET_KEY (key hashing, credential encryption)
    host: str = "0.0.0.0"
    port: int = 4000
    http_workers: int = 1  # Granian worker processes, each an edge of its own on the bus
    request_timeout: float = 600.0  # seconds a client waits for an answer (queueing included)
    publish_timeout: float = 5.0  # seconds to get a request into JetStream
    max_body_bytes: int = 10 * 1024 * 1024
    worker_seen_within: float = 10.0  # a worker heartbeat at most this old counts for readiness
    shutdown_grace: float = 30.0  # seconds a stopping edge gives requests in flight (streams) to finish
    log_level: str = "info"
    ratelimit_fail_open: bool = False  # NATS unreachable: admit unchecked (True) or refuse with 503
    # A ceiling on the completion length a client may ask for (max_tokens / max_completion_tokens):
    # None = no ceiling; past it the request is refused (400) or lowered to it ("clip").
    max_tokens_limit: int | None = None
    max_tokens_policy: Literal["refuse", "clip"] = "refuse"
    # Browser origins allowed to call the API (CORS); empty = CORS off, "*" = any origin.
    cors_origins: tuple[str, ...] = ()
    # Failed authentication from one address within a minute: past the first number each 401 is
    # slowed, at the second the address is refused (429) until the minute ends; 0 turns it off.
    usage_retention_days: int = 30  # max age of the usage stream (the edge writes refusals to it)
    responses_retention_days: int = 30  # how long stored responses (the Responses API) are kept; 0 = forever
    # How long a background stream's events stay readable (resumed with `starting_after`) after
    # its response ended (LLMGW_RESPONSE_EVENTS_RETENTION, seconds).
    response_events_retention: float = 3600.0
    auth_failures_slow_after: int = 20
    auth_failures_refuse_after: int = 100
    # A caller with a budget may use a model with no known price (served at cost 0, its usage
    # rows `cost_known: false`); otherwise such a request is refused with 400 model_price_unknown.
    allow_unpriced_models: bool = False
    # Seconds a budgeted request that does not fit only because of requests in flight waits for
    # them to settle before it is refused (never past its deadline); 0 = refuse at once.
    budget_wait_seconds: float = 10.0
    metrics: bool = True  # count requests and serve /metrics (LLMGW_METRICS)
    # The Batch API (gateway/batches/runner.py): lines of one batch in flight at once, seconds a
    # runner's lease on a batch lasts unrenewed (another edge takes a lapsed one over), seconds
    # between looks for batches to run.
    batch_concurrency: int = 8
    batch_lease_seconds: float = 15.0
    batch_poll_seconds: float = 2.0
    # Background jobs (background responses, resumable chat streams: gateway/job_takeover.py):
    # seconds an edge's lease on one lasts unrenewed (another edge takes a lapsed one over), and
    # seconds between looks for lapsed ones.
    job_lease_seconds: float = 6.0
    job_poll_seconds: float = 1.0
    # While any edge has interactive traffic (gateway/batches/pace.py): lines of this edge's batches
    # in flight at most, and the pause after each line per interactive request of the last second.
    batch_yield_lines: int = 1
    batch_yield_pause: float = 0.002
    # Seconds between looks at a batch handed to a provider's own batch API (gateway/batches/handoff.py).
    provider_batch_poll_seconds: float = 30.0
    # Seconds a console session (/ui) lasts from sign-in (LLMGW_CONSOLE_SESSION_MAX_AGE; 12 h).
    console_session_max_age: float = CONSOLE_SESSION_MAX_AGE
    sso: SsoSettings | None = None  # the console's single sign-on (general_settings.ui_sso)
    tracing: bool = False  # OpenTelemetry traces (llmgw/tracing.py: the environment, or the config's callbacks)


MAX_TOKENS_POLICIES = ("refuse", "clip")


def max_tokens_limit_from_env(env: Mapping[str, str]) -> int | None:
    """LLMGW_MAX_TOKENS_LIMIT: unset or empty = no limit; otherwise a whole number >= 1."""
    if not env.get("LLMGW_MAX_TOKENS_LIMIT"):
        return None
    limit = env_int(env, "LLMGW_MAX_TOKENS_LIMIT", 0)
    if limit < 1:
        raise ConfigError(f"LLMGW_MAX_TOKENS_LIMIT: expected a whole number >= 1, got {limit}")
    return limit


def max_tokens_policy_from_env(env: Mapping[str, str]) -> Literal["refuse", "clip"]:
    policy = env_str(env, "LLMGW_MAX_TOKENS_POLICY", "refuse").strip().lower()
    if policy not in MAX_TOKENS_POLICIES:
        raise ConfigError(f"LLMGW_MAX_TOKENS_POLICY: expected one of {', '.join(MAX_TOKENS_POLICIES)}, got {policy!r}")
    return policy  # type: ignore[return-value]


def responses_retention_days_from_env(env: Mapping[str, str]) -> int:
    """LLMGW_RESPONSES_RETENTION_DAYS: days a stored response is kept (default 30; 0 = forever)."""
    days = env_int(env, "LLMGW_RESPONSES_RETENTION_DAYS", 30)
    if days < 0:
        raise ConfigError(f"LLMGW_RESPONSES_RETENTION_DAYS: must be 0 (forever) or more, got {days}")
    return days


def cors_origins_from_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """LLMGW_CORS_ORIGINS: comma-separated origins (`https://app.example`), or `*`."""
    return tuple(o.strip().rstrip("/") for o in env.get("LLMGW_CORS_ORIGINS", "").split(",") if o.strip())


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def allow_unpriced_models(config: GatewayConfig, env: Mapping[str, str]) -> bool:
    """LLMGW_ALLOW_UNPRICED_MODELS when set, else `general_settings.allow_unpriced_models` (default false)."""
    raw: object = env.get("LLMGW_ALLOW_UNPRICED_MODELS") or config.general_settings.get("allow_unpriced_models", False)
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ConfigError(f"allow_unpriced_models (LLMGW_ALLOW_UNPRICED_MODELS): expected true or false, got {raw!r}")


def edge_settings_from_env(env: Mapping[str, str] | None = None) -> EdgeSettings:
    env = os.environ if env is None else env
    config = load_config(env.get("LLMGW_CONFIG"), env)
    return EdgeSettings(
        bus=bus_settings_from_env(env),
        config=config,
        secret=server_secret(env, config.master_key),
        host=env_str(env, "LLMGW_HOST", "0.0.0.0"),
        port=env_int(env, "LLMGW_PORT", 4000),
        http_workers=env_int(env, "LLMGW_HTTP_WORKERS", 1),
        request_timeout=env_float(env, "LLMGW_REQUEST_TIMEOUT", 600.0),
        max_body_bytes=env_int(env, "LLMGW_MAX_BODY_BYTES", 10 * 1024 * 1024),
        shutdown_grace=env_float(env, "LLMGW_SHUTDOWN_GRACE", 30.0),
        log_level=env_str(env, "LLMGW_LOG_LEVEL", "info"),
        ratelimit_fail_open=env_str(env, "LLMGW_RATELIMIT_FAIL_OPEN", "false").strip().lower() in ("1", "true", "yes"),
        max_tokens_limit=max_tokens_limit_from_env(env),
        max_tokens_policy=max_tokens_policy_from_env(env),
        cors_origins=cors_origins_from_env(env),
        usage_retention_days=env_int(env, "LLMGW_USAGE_RETENTION_DAYS", 30),
        responses_retention_days=responses_retention_days_from_env(env),
        response_events_retention=env_float(env, "LLMGW_RESPONSE_EVENTS_RETENTION", 3600.0),
        auth_failures_slow_after=env_int(env, "LLMGW_AUTH_FAILURES_SLOW_AFTER", 20),
        auth_failures_refuse_after=env_int(env, "LLMGW_AUTH_FAILURES_REFUSE_AFTER", 100),
        allow_unpriced_models=allow_unpriced_models(config, env),
        budget_wait_seconds=max(env_float(env, "LLMGW_BUDGET_WAIT_SECONDS", 10.0), 0.0),
        metrics=env_bool(env, "LLMGW_METRICS", True),
        tracing=tracing_wanted(env, config.litellm_settings),
        sso=sso_settings(config.general_settings, env),
        batch_concurrency=max(env_int(env, "LLMGW_BATCH_CONCURRENCY", 8), 1),
        batch_lease_seconds=max(env_float(env, "LLMGW_BATCH_LEASE_SECONDS", 15.0), 1.0),
        batch_poll_seconds=max(env_float(env, "LLMGW_BATCH_POLL_SECONDS", 2.0), 0.1),
        batch_yield_lines=max(env_int(env, "LLMGW_BATCH_YIELD_LINES", 1), 1),
        batch_yield_pause=max(env_float(env, "LLMGW_BATCH_YIELD_PAUSE", 0.002), 0.0),
        provider_batch_poll_seconds=max(env_float(env, "LLMGW_PROVIDER_BATCH_POLL_SECONDS", 30.0), 0.1),
        console_session_max_age=max(env_float(env, "LLMGW_CONSOLE_SESSION_MAX_AGE", CONSOLE_SESSION_MAX_AGE), 1.0),
        job_lease_seconds=max(env_float(env, "LLMGW_JOB_LEASE_SECONDS", 6.0), 1.0),
        job_poll_seconds=max(env_float(env, "LLMGW_JOB_POLL_SECONDS", 1.0), 0.1),
    )
