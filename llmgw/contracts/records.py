"""Records kept in JetStream KV buckets: virtual keys, users, teams, run-time settings.

Values are JSON. Keys of the keys bucket are the key's token (an HMAC of the plaintext key, hex);
users and teams are stored under `kv_key(id)` because ids may hold characters KV keys may not.
Every record carries `updated_at`; readers apply a KV entry only if its revision is newer than the
one they hold, so an older copy never overwrites a newer one.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

# User roles as LiteLLM names them: a proxy admin may do everything, a proxy admin viewer may read
# everything and change nothing, internal users (and viewers) see only their own records.
ROLE_PROXY_ADMIN = "proxy_admin"
ROLE_PROXY_ADMIN_VIEWER = "proxy_admin_viewer"
ROLE_INTERNAL_USER = "internal_user"
ROLE_INTERNAL_USER_VIEWER = "internal_user_viewer"
ROLE_TEAM = "team"
# The older names, kept as aliases of the roles above.
ROLE_ADMIN = "admin"
ROLE_APP_OWNER = "app_owner"
ROLE_APP_USER = "app_user"
ROLE_ALIASES = {ROLE_ADMIN: ROLE_PROXY_ADMIN, ROLE_APP_OWNER: ROLE_INTERNAL_USER, ROLE_APP_USER: ROLE_INTERNAL_USER_VIEWER}
USER_ROLES = (
    ROLE_PROXY_ADMIN,
    ROLE_PROXY_ADMIN_VIEWER,
    ROLE_INTERNAL_USER,
    ROLE_INTERNAL_USER_VIEWER,
    ROLE_TEAM,
    *ROLE_ALIASES,
)
# Roles of a team's members.
TEAM_ROLE_ADMIN = "admin"
TEAM_ROLE_USER = "user"
TEAM_ROLES = (TEAM_ROLE_ADMIN, TEAM_ROLE_USER)


def canonical_role(role: str | None) -> str:
    """A user role by its LiteLLM name (an older name is an alias; no role is an internal user)."""
    if not role:
        return ROLE_INTERNAL_USER
    return ROLE_ALIASES.get(role, role)


def kv_key(identifier: str) -> str:
    """A KV-safe key for any id (user ids are often e-mail addresses)."""
    return "i" + base64.urlsafe_b64encode(identifier.encode()).decode()


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The budget and rate limits a key, a user and a team each carry, declared once.

    The records below take these fields from here (as a struct embedded in Go does): on the bus
    and in the API they stay top-level fields of the record, LiteLLM's shape, so records stored
    before keep their limits."""

    max_budget: float | None = None
    soft_budget: float | None = None
    model_max_budget: dict[str, float] = {}
    max_parallel_requests: int | None = None
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    # A budget object (`/budget/new`, records.BudgetRecord) whose limits bound the holder instead.
    budget_id: str | None = None

    @property
    def rate_limited(self) -> bool:
        """Whether any rate limit (rpm, tpm, parallel requests) is set."""
        return bool(self.rpm_limit or self.tpm_limit or self.max_parallel_requests)


class KeyRecord(Limits, frozen=True, kw_only=True):
    token: str  # HMAC-SHA256 of the plaintext key; the plaintext is never stored
    key_name: str  # `sk-...abcd`: enough to recognise a key, not to use it
    key_alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    models: list[str] = []  # model names or access groups; empty: every model
    aliases: dict[str, str] = {}
    config: dict = {}
    spend: float = 0.0
    metadata: dict = {}
    permissions: dict = {}
    allowed_cache_controls: list[str] = []
    system_prompt: str | None = None
    expires: float | None = None  # epoch seconds
    blocked: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    priority: str = "interactive"  # messages.Priority: batch keys wait while interactive ones are queued


class UserRecord(Limits, frozen=True, kw_only=True):
    user_id: str
    user_email: str | None = None
    user_role: str = ROLE_INTERNAL_USER
    teams: list[str] = []
    models: list[str] = []
    spend: float = 0.0
    model_spend: dict[str, float] = {}
    allowed_cache_controls: list[str] = []
    metadata: dict = {}
    created_at: float = 0.0
    updated_at: float = 0.0


class TeamMember(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str | None = None
    user_email: str | None = None
    role: str = TEAM_ROLE_USER  # TEAM_ROLES
    # A budget object (BudgetRecord) bounding what the member spends within the team
    # (`max_budget_in_team`), in a ledger of its own.
    budget_id: str | None = None


class TeamRecord(Limits, frozen=True, kw_only=True):
    team_id: str
    team_alias: str | None = None
    organization_id: str | None = None  # the organization whose models and budget bound the team's
    models: list[str] = []  # bound on the models its keys may call; empty: every model
    spend: float = 0.0
    members_with_roles: list[TeamMember] = []
    metadata: dict = {}
    system_prompt: str | None = None
    blocked: bool = False
    model_aliases: dict[str, str] = {}  # a name its keys ask for -> the model group it means
    created_at: float = 0.0
    updated_at: float = 0.0

    def member(self, user_id: str | None) -> TeamMember | None:
        """The member with this user id, if any."""
        if not user_id:
            return None
        return next((m for m in self.members_with_roles if m.user_id == user_id), None)


# Roles of an organization's members, as LiteLLM names them: an organization admin manages the
# organization's members and teams; its internal users (and viewers) may read it.
ORG_ROLE_ADMIN = "org_admin"
ORG_ROLES = (ORG_ROLE_ADMIN, ROLE_INTERNAL_USER, ROLE_INTERNAL_USER_VIEWER)


class OrgMember(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    user_email: str | None = None
    user_role: str = ROLE_INTERNAL_USER  # ORG_ROLES
    created_at: float = 0.0


class OrganizationRecord(Limits, frozen=True, kw_only=True):
    """An organization (LiteLLM's `/organization/*`): it owns teams, and its `models` and budget
    bound theirs; requests of its teams' keys count against its ledger (LedgerKind.ORG).
    A `budget_id` (Limits) names a budget object whose limits apply instead of the ones given here."""

    organization_id: str
    organization_alias: str | None = None
    models: list[str] = []  # empty: every model
    members: list[OrgMember] = []
    metadata: dict = {}
    spend: float = 0.0
    blocked: bool = False
    created_by: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def member(self, user_id: str | None) -> OrgMember | None:
        """The member with this user id, if any."""
        if not user_id:
            return None
        return next((m for m in self.members if m.user_id == user_id), None)


class EndUserRecord(Limits, frozen=True, kw_only=True):
    """An end user (LiteLLM's customer): whom a request is for, by its `user` field (or the
    `x-litellm-end-user-id` header), in the settings bucket under `enduser.<id>`."""

    user_id: str
    alias: str | None = None
    blocked: bool = False
    allowed_model_region: str | None = None
    default_model: str | None = None
    metadata: dict = {}
    created_at: float = 0.0
    updated_at: float = 0.0


class BudgetRecord(Limits, frozen=True, kw_only=True):
    """A budget object (`/budget/new`): limits that keys, users, teams and end users naming its
    `budget_id` are bound by (each holder keeps its own spend), under `budget.<id>`."""

    created_by: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


class RateWindow(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Rate-limit state of one scope in the ratelimits KV bucket, written by compare-and-set only.

    Counts older than the window are dropped on every write, so the record stays small."""

    requests: dict[int, int] = {}  # epoch second -> requests admitted in it (when rpm is set)
    tokens: dict[int, int] = {}  # epoch second -> tokens recorded in it (when tpm is set)
    slots: dict[str, float] = {}  # request id -> epoch seconds its parallel slot expires at
    updated_at: float = 0.0


class CredentialRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A provider credential set at run time, encrypted with a key derived from LLMGW_SECRET_KEY."""

    deployment_id: str
    ciphertext: str  # Fernet token
    masked: str  # `sk-...abcd`, what admin endpoints show
    updated_at: float = 0.0


class ModelRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A deployment added at run time (`/model/new`, LiteLLM's `store_model_in_db`), in the
    settings bucket under `model.<id>`: LiteLLM's `model_name`, `litellm_params` and `model_info`.
    Every secret parameter (`api_key`, `aws_secret_access_key`, `vertex_credentials`, ...) is kept
    only encrypted (`sealed`, Fernet tokens under LLMGW_SECRET_KEY) and masked (`masked`)."""

    model_id: str
    model_name: str
    litellm_params: dict[str, Any] = {}  # the parameters that are not secret
    sealed: dict[str, str] = {}  # secret parameter -> Fernet token
    masked: dict[str, str] = {}  # secret parameter -> `sk-...abcd`, what admin endpoints show
    model_info: dict[str, Any] = {}
    created_by: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


class PolicyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Gateway-wide policy: the system prompt injected into every request."""

    system_prompt: str | None = None
    updated_at: float = 0.0


class Reservation(msgspec.Struct, frozen=True):
    amount: float  # USD held for one request until its usage is settled
    expires_at: float  # epoch seconds; a reservation of a lost request stops counting then
    # The edge settled it to its request's cost (the last reply was in): it will not shrink any
    # more, so a request waiting for room does not wait for it (gateway/budgets.py).
    final: bool = False


class BudgetLedger(msgspec.Struct, frozen=True, kw_only=True):
    """The spend of one key, user or team (or a key's spend on one model) in its budget period.

    Written by compare-and-set only: edges add and release reservations, metering settles actual
    cost (`applied_seq` makes settling idempotent: an event at or below it was already counted).
    """

    spent: float = 0.0  # settled spend in the current period
    period: int = 0  # index of the budget period `spent` belongs to (0 without budget_duration)
    reservations: dict[str, Reservation] = {}  # request id -> held amount
    model_spend: dict[str, float] = {}
    applied_seq: int = 0  # usage-stream sequence of the last event settled here
    soft_alerted_period: int = -1  # the period a soft-budget alert was last published for
    updated_at: float = 0.0


class LedgerKind:
    KEY = "key"
    USER = "user"
    TEAM = "team"
    ORG = "org"  # an organization's, covering every key of its teams
    KEY_MODEL = "keymodel"  # a key's model_max_budget
    TEAM_MEMBER = "member"  # a member's spend within a team (ledger_key(TEAM_MEMBER, team, user))
    END_USER = "enduser"  # an end user (a request's `user` field): records.EndUserRecord
    GATEWAY = "gateway"  # all spend of the gateway (`litellm_settings.max_budget`)


def ledger_key(kind: str, identifier: str, model: str | None = None) -> str:
    """Key of a ledger in the budgets bucket: `key.<token>`, `user.<id>`, `keymodel.<token>.<model>`."""
    ident = identifier if kind in (LedgerKind.KEY, LedgerKind.KEY_MODEL) else kv_key(identifier)
    return f"{kind}.{ident}" + (f".{kv_key(model)}" if model is not None else "")


class BudgetAlert(msgspec.Struct, frozen=True, kw_only=True):
    """Published (JSON) when spend crosses a soft budget, once per budget period."""

    kind: str  # LedgerKind
    id: str  # key token, user id or team id
    spent: float
    soft_budget: float
    max_budget: float | None = None
    period: int = 0
    ts: float = 0.0


# Keys of the settings bucket.
POLICY_PREFIX = "policy."
POLICY_KEY = "policy.global"
CREDENTIAL_PREFIX = "credential."
MODEL_PREFIX = "model."  # deployments added at run time (ModelRecord)
END_USER_PREFIX = "enduser."  # end users (EndUserRecord)
BUDGET_PREFIX = "budget."  # budget objects (BudgetRecord)
# The fingerprint of the secret keys are hashed under (llmgw.secrets.secret_fingerprint, hex text):
# written at the first start, compared by every edge at start-up.
SECRET_FINGERPRINT_KEY = "secret.fingerprint"


def credential_key(deployment_id: str) -> str:
    return CREDENTIAL_PREFIX + kv_key(deployment_id)


def model_key(model_id: str) -> str:
    return MODEL_PREFIX + kv_key(model_id)


def end_user_key(end_user_id: str) -> str:
    return END_USER_PREFIX + kv_key(end_user_id)


def budget_key(budget_id: str) -> str:
    return BUDGET_PREFIX + kv_key(budget_id)


__all__ = [
    "BUDGET_PREFIX",
    "CREDENTIAL_PREFIX",
    "END_USER_PREFIX",
    "MODEL_PREFIX",
    "ORG_ROLES",
    "ORG_ROLE_ADMIN",
    "POLICY_KEY",
    "POLICY_PREFIX",
    "ROLE_ADMIN",
    "ROLE_ALIASES",
    "ROLE_APP_OWNER",
    "ROLE_APP_USER",
    "ROLE_INTERNAL_USER",
    "ROLE_INTERNAL_USER_VIEWER",
    "ROLE_PROXY_ADMIN",
    "ROLE_PROXY_ADMIN_VIEWER",
    "ROLE_TEAM",
    "SECRET_FINGERPRINT_KEY",
    "TEAM_ROLES",
    "TEAM_ROLE_ADMIN",
    "TEAM_ROLE_USER",
    "USER_ROLES",
    "BudgetAlert",
    "BudgetLedger",
    "BudgetRecord",
    "CredentialRecord",
    "EndUserRecord",
    "KeyRecord",
    "LedgerKind",
    "Limits",
    "ModelRecord",
    "OrgMember",
    "OrganizationRecord",
    "PolicyRecord",
    "RateWindow",
    "Reservation",
    "TeamMember",
    "TeamRecord",
    "UserRecord",
    "budget_key",
    "canonical_role",
    "credential_key",
    "end_user_key",
    "kv_key",
    "ledger_key",
    "model_key",
]
