"""Reconciliation: llmgw's metering checked against the providers' own usage and cost reports.

The shapes every side agrees on: the admin credential a provider's reports are read with (sealed
in the settings bucket), the columns of the named queries' answers (metering writes the SQL, the
edge and the CLI read the columns by these names), the kinds of line and the alert published on
`Subjects.reconciliation_alert(kind)` in the alerts stream.
"""

from __future__ import annotations

import msgspec

from llmgw.contracts.records import kv_key

# Providers whose own usage and cost reports llmgw reads (OpenAI's organization Usage and Costs
# APIs, Anthropic's Admin API usage and cost reports).
RECONCILED_PROVIDERS = ("openai", "anthropic")
# Relative drift (|metered - billed| / billed) above which a line is `drift` and alerted.
DEFAULT_DRIFT_THRESHOLD = 0.02

# Settings-bucket key of a provider's admin credential (AdminCredentialRecord).
ADMIN_CREDENTIAL_PREFIX = "reconcile."


def admin_credential_key(provider: str) -> str:
    return ADMIN_CREDENTIAL_PREFIX + kv_key(provider)


class ReconcileLineKind:
    OK = "ok"  # metered and billed agree within the threshold
    DRIFT = "drift"  # they differ by more than the threshold
    UNBILLED = "unbilled"  # llmgw metered it, the provider billed nothing (yet)
    # Billed on a provider key or project llmgw does not send with, or in an hour and model
    # llmgw sent nothing: traffic that did not go through the gateway (a leaked key).
    OUTSIDE = "outside"
    STALE_PRICE = "stale_price"  # llmgw's price of a model differs from what the provider charged


class AdminCredentialRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's admin key (it reads the organization's usage and costs), encrypted with a key
    derived from LLMGW_SECRET_KEY like the deployments' credentials (llmgw.secrets.CredentialCipher)."""

    provider: str
    ciphertext: str  # Fernet token
    masked: str  # `sk-...abcd`, what admin endpoints show
    updated_at: float = 0.0


# The columns of NamedQuery.RECONCILIATION's rows, in order.
RECONCILIATION_COLUMNS = (
    "provider",
    "model",
    "hour",  # ISO 8601 UTC, the hour's start
    "kind",  # ReconcileLineKind
    "account",  # the provider key or project an outside line was billed on ('' for the others)
    "metered_requests",
    "billed_requests",  # None: the provider does not report requests (Anthropic)
    "metered_input_tokens",
    "billed_input_tokens",
    "metered_output_tokens",
    "billed_output_tokens",
    "metered_cost",  # USD at llmgw's prices
    "billed_cost",  # USD the provider charged (None: no cost report for that day yet)
    "token_drift",  # metered - billed, input and output tokens together
    "token_drift_relative",  # token_drift / billed (None when nothing was billed)
    "cost_drift",  # metered_cost - billed_cost
    "cost_drift_relative",
)

# The columns of NamedQuery.STALE_PRICES's rows, in order.
STALE_PRICE_COLUMNS = (
    "provider",
    "model",
    "token_type",  # input, cached_input, cache_write, output
    "day",  # YYYY-MM-DD (UTC)
    "tokens",  # billed that day
    "provider_price",  # USD per 1M tokens the provider charged
    "llmgw_price",  # USD per 1M tokens in llmgw's table
    "difference_relative",  # (llmgw - provider) / provider
)


class ReconciliationAlert(msgspec.Struct, frozen=True, kw_only=True):
    """Published (JSON) once per line when a reconciliation finds drift past the threshold,
    outside traffic, or a stale price."""

    kind: str  # ReconcileLineKind
    provider: str
    model: str
    hour: str = ""  # ISO 8601 UTC (a line), or the day (a stale price)
    account: str = ""
    metered_tokens: int = 0
    billed_tokens: int = 0
    metered_cost: float | None = None
    billed_cost: float | None = None
    drift_relative: float | None = None
    threshold: float = DEFAULT_DRIFT_THRESHOLD
    ts: float = 0.0


__all__ = [
    "ADMIN_CREDENTIAL_PREFIX",
    "DEFAULT_DRIFT_THRESHOLD",
    "RECONCILED_PROVIDERS",
    "RECONCILIATION_COLUMNS",
    "STALE_PRICE_COLUMNS",
    "AdminCredentialRecord",
    "ReconcileLineKind",
    "ReconciliationAlert",
    "admin_credential_key",
]
