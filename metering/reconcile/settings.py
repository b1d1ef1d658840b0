"""The reconciler's settings, read once with metering's (all from the environment):

LLMGW_RECONCILE_PROVIDERS                 openai,anthropic (empty: no reconciliation)
LLMGW_RECONCILE_INTERVAL                  seconds between two readings of the reports (3600)
LLMGW_RECONCILE_LOOKBACK_HOURS            how many hours back each reading goes, from the start of
                                          that UTC day (48)
LLMGW_RECONCILE_DRIFT_THRESHOLD           relative drift that is alerted (0.02: 2 %)
LLMGW_RECONCILE_ALERT_DELAY_MINUTES       an hour is alerted on once it ended this long ago (60:
                                          the providers' reports lag)
LLMGW_RECONCILE_<PROVIDER>_API_BASE       the reports' server (https://api.openai.com, ...)
LLMGW_RECONCILE_<PROVIDER>_ADMIN_KEY      the admin key, when it is not set (sealed) with
                                          POST /spend/reconciliation/credentials
LLMGW_RECONCILE_<PROVIDER>_KEY_IDS        the provider API key ids (or project / workspace ids)
                                          llmgw's deployments use, comma-separated: traffic
                                          billed on any other is outside traffic (empty: all
                                          the organization's traffic is llmgw's)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llmgw.config import ConfigError, Secret, load_config
from llmgw.contracts import DEFAULT_DRIFT_THRESHOLD, RECONCILED_PROVIDERS
from llmgw.secrets import server_secret
from llmgw.settings import env_float, env_int, env_str
from metering.reconcile.reports import DEFAULT_API_BASES


@dataclass(frozen=True)
class ProviderReports:
    provider: str
    api_base: str
    key_ids: tuple[str, ...] = ()
    admin_key: Secret | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ReconcileSettings:
    providers: tuple[ProviderReports, ...]
    secret: bytes = field(repr=False)  # opens the sealed admin keys
    interval: float = 3600.0
    lookback_hours: int = 48
    threshold: float = DEFAULT_DRIFT_THRESHOLD
    alert_delay_minutes: float = 60.0


def _list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def reconcile_settings_from_env(env: Mapping[str, str]) -> ReconcileSettings | None:
    """None when no provider is reconciled; ConfigError for a bad setting."""
    names = tuple(p.lower() for p in _list(env_str(env, "LLMGW_RECONCILE_PROVIDERS", "")))
    if not names:
        return None
    unknown = [p for p in names if p not in RECONCILED_PROVIDERS]
    if unknown:
        raise ConfigError(
            f"LLMGW_RECONCILE_PROVIDERS: {', '.join(unknown)} publish no usage report llmgw reads;"
            f" expected some of {', '.join(RECONCILED_PROVIDERS)}"
        )
    providers = []
    for name in names:
        upper = name.upper()
        key = env.get(f"LLMGW_RECONCILE_{upper}_ADMIN_KEY") or ""
        providers.append(
            ProviderReports(
                provider=name,
                api_base=env_str(env, f"LLMGW_RECONCILE_{upper}_API_BASE", DEFAULT_API_BASES[name]).rstrip("/"),
                key_ids=_list(env.get(f"LLMGW_RECONCILE_{upper}_KEY_IDS", "")),
                admin_key=Secret(key) if key else None,
            )
        )
    settings = ReconcileSettings(
        providers=tuple(providers),
        secret=server_secret(env, load_config(env.get("LLMGW_CONFIG"), env).master_key),
        interval=env_float(env, "LLMGW_RECONCILE_INTERVAL", 3600.0),
        lookback_hours=env_int(env, "LLMGW_RECONCILE_LOOKBACK_HOURS", 48),
        threshold=env_float(env, "LLMGW_RECONCILE_DRIFT_THRESHOLD", DEFAULT_DRIFT_THRESHOLD),
        alert_delay_minutes=env_float(env, "LLMGW_RECONCILE_ALERT_DELAY_MINUTES", 60.0),
    )
    if settings.interval <= 0:
        raise ConfigError(f"LLMGW_RECONCILE_INTERVAL: must be above 0, got {settings.interval}")
    if not 1 <= settings.lookback_hours <= 24 * 31:
        raise ConfigError(f"LLMGW_RECONCILE_LOOKBACK_HOURS: expected 1 to 744, got {settings.lookback_hours}")
    if settings.threshold < 0:
        raise ConfigError(f"LLMGW_RECONCILE_DRIFT_THRESHOLD: must be 0 or more, got {settings.threshold}")
    return settings
