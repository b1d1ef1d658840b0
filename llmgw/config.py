"""The gateway's configuration file: a LiteLLM-style `model_list` plus settings.

```yaml
model_list:
  - model_name: gpt-4                 # the name clients ask for (a model group)
    params:                           # `litellm_params` is accepted as an alias
      model: openai/gpt-4o            # <provider>/<upstream model>
      api_base: https://api.openai.com/v1
      api_key: os.environ/OPENAI_API_KEY
    model_info:
      access_groups: ["beta-models"]
general_settings:
  master_key: sk-1234
```

With no file, every provider whose key is in the environment is served (seed 000): OpenAI for
any model name, the others as `<provider>/<model>`.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from llmgw.catalog import OPENAI, PROVIDERS, UnknownProviderError, split_model


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


class Secret:
    """A credential: never shown by repr/str, so it cannot slip into a log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def masked(self) -> str:
        v = self._value
        return f"{v[:3]}...{v[-4:]}" if len(v) > 10 else "***"

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    """One upstream a model group can be served by."""

    id: str
    model_name: str  # the model group (may be a wildcard pattern such as `groq/*` or `*`)
    provider: str
    upstream_model: str  # may contain `*`, filled from the requested name
    api_base: str | None = None
    api_key: Secret | None = None
    api_version: str | None = None
    timeout: float | None = None  # seconds for the whole upstream call
    stream_timeout: float | None = None  # seconds a stream may go without a chunk before it is ended
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    # LiteLLM's unit prices (UNIT_PRICE_PARAMS), USD per unit, where the config sets them
    unit_prices: tuple[tuple[str, float], ...] = ()
    access_groups: tuple[str, ...] = ()
    extra_headers: tuple[tuple[str, str], ...] = ()
    # Provider-specific parameters (vertex_project, aws_region_name, ...); secret ones as Secret.
    extra: tuple[tuple[str, Any], ...] = ()
    # Router: share of traffic in `simple-shuffle`, and this deployment's own limits.
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_parallel_requests: int | None = None
    # A wildcard deployment's models as clients name them, for GET /v1/models (`model_info.models`).
    listed_models: tuple[str, ...] = ()

    @property
    def is_wildcard(self) -> bool:
        return "*" in self.model_name

    def matches(self, requested: str) -> str | None:
        """The part of `requested` the wildcard stands for, or None when it does not match."""
        prefix, _, suffix = self.model_name.partition("*")
        if len(requested) > len(prefix) + len(suffix) and requested.startswith(prefix) and requested.endswith(suffix):
            return requested[len(prefix) : len(requested) - len(suffix)]
        return None

    def option(self, name: str, default: Any = None) -> Any:
        """A provider-specific parameter (`extra`), or `default`."""
        for key, value in self.extra:
            if key == name:
                return value
        return default

    def secrets(self) -> list[str]:
        """Every credential this deployment holds, in plain text (to scrub them from answers)."""
        out = [self.api_key.reveal()] if self.api_key is not None else []
        out.extend(v.reveal() for _, v in self.extra if isinstance(v, Secret))
        return [s for s in out if s]

    def base_for(self, upstream_model: str) -> str:
        """The base URL, with a `{model}` template filled in (seed 004: one server per model path)."""
        base = self.api_base or ""
        return base.replace("{model}", upstream_model) if "{model}" in base else base

    def upstream_model_for(self, requested: str) -> str:
        if "*" not in self.upstream_model:
            return self.upstream_model
        part = self.matches(requested)
        return self.upstream_model.replace("*", part if part is not None else requested)


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True):
    deployments: tuple[Deployment, ...] = ()
    master_key: Secret | None = None
    general_settings: dict[str, Any] = {}
    litellm_settings: dict[str, Any] = {}
    router_settings: dict[str, Any] = {}

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(sorted({d.provider for d in self.deployments}))

    def deployment(self, deployment_id: str) -> Deployment | None:
        for d in self.deployments:
            if d.id == deployment_id:
                return d
        return None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def resolve_env(value: Any, env: Mapping[str, str], where: str) -> Any:
    """`os.environ/NAME` -> the variable's value (an error if it is not set)."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value.removeprefix("os.environ/")
        if name not in env:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return env[name]
    return value


def _float_or_none(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None


# Unit prices a deployment may set (LiteLLM's names), in `params` or `model_info`: USD per image,
# per second of audio, per character of speech, per rerank search unit (query), per request.
UNIT_PRICE_PARAMS = (
    "output_cost_per_image",
    "input_cost_per_second",
    "input_cost_per_character",
    "input_cost_per_query",
    "input_cost_per_request",
)

# `params` keys the gateway itself understands; any other key is provider-specific (`extra`).
KNOWN_PARAMS = frozenset(
    {
        "model",
        "api_base",
        "api_key",
        "api_version",
        "timeout",
        "input_cost_per_token",
        "output_cost_per_token",
        *UNIT_PRICE_PARAMS,
        "extra_headers",
        "weight",
        "rpm",
        "tpm",
        "max_parallel_requests",
        "stream_timeout",
    }
)
_SECRET_HINTS = ("key", "secret", "token", "credentials", "password")


def _int_or_none(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise ConfigError(f"{where}: expected a whole number >= 0, got {value!r}")
    return int(value)


def is_secret_param(name: str) -> bool:
    """A deployment parameter holding a credential (`api_key`, `aws_secret_access_key`,
    `vertex_credentials`, ...): kept as a Secret, never shown, stored only encrypted."""
    lowered = name.lower()
    return any(h in lowered for h in _SECRET_HINTS) and not lowered.endswith(("_id", "_name", "_corpus_key"))


def _extra_params(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    out: list[tuple[str, Any]] = []
    for name, value in sorted(params.items()):
        if name in KNOWN_PARAMS or value is None:
            continue
        secret = is_secret_param(name)
        if secret and isinstance(value, (dict, list)):
            value = json.dumps(value)
        out.append((name, Secret(str(value)) if secret else value))
    return tuple(out)


def parse_deployment(index: int, entry: Any, env: Mapping[str, str]) -> Deployment:
    where = f"model_list[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping")
    model_name = entry.get("model_name")
    if not isinstance(model_name, str) or not model_name:
        raise ConfigError(f"{where}.model_name: required string")
    params = entry.get("params", entry.get("litellm_params"))
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.params: required mapping (`litellm_params` is accepted too)")
    params = {k: resolve_env(v, env, f"{where}.params.{k}") for k, v in params.items()}
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{where}.params.model: required string such as `openai/gpt-4o`")
    try:
        provider, upstream = split_model(model)
    except UnknownProviderError as exc:
        raise ConfigError(f"{where}.params.model: {exc}") from None
    info = PROVIDERS[provider]
    for name, variables in info.extra_env:
        if params.get(name) is None and _env_first(env, variables):
            params[name] = _env_first(env, variables)
    api_base = params.get("api_base") or _env_first(env, info.base_env) or info.api_base
    if api_base is None and info.base_required:
        raise ConfigError(f"{where}.params.api_base: required for provider {provider}")
    api_key = params.get("api_key") or _env_first(env, info.key_env)
    model_info = entry.get("model_info") or {}
    groups = model_info.get("access_groups") or ()
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) for g in groups):
        raise ConfigError(f"{where}.model_info.access_groups: expected a list of strings")
    headers = params.get("extra_headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"{where}.params.extra_headers: expected a mapping")
    listed = _listed_models(model_info.get("models"), model_name, f"{where}.model_info.models")
    return Deployment(
        id=str(model_info.get("id") or f"{model_name}/{index}"),
        model_name=model_name,
        provider=provider,
        upstream_model=upstream,
        api_base=str(api_base).rstrip("/") if api_base else None,
        api_key=Secret(str(api_key)) if api_key else None,
        api_version=str(params["api_version"]) if params.get("api_version") is not None else None,  # (YAML dates)
        timeout=_float_or_none(params.get("timeout"), f"{where}.params.timeout"),
        stream_timeout=_float_or_none(params.get("stream_timeout"), f"{where}.params.stream_timeout"),
        input_cost_per_token=_float_or_none(
            params.get("input_cost_per_token", model_info.get("input_cost_per_token")), f"{where}.input_cost_per_token"
        ),
        output_cost_per_token=_float_or_none(
            params.get("output_cost_per_token", model_info.get("output_cost_per_token")),
            f"{where}.output_cost_per_token",
        ),
        unit_prices=tuple(
            (name, price)
            for name in UNIT_PRICE_PARAMS
            if (price := _float_or_none(params.get(name, model_info.get(name)), f"{where}.{name}")) is not None
        ),
        access_groups=tuple(groups),
        extra_headers=tuple((str(k), str(v)) for k, v in headers.items()),
        extra=_extra_params(params),
        weight=_float_or_none(params.get("weight"), f"{where}.params.weight") or 1.0,
        rpm=_int_or_none(params.get("rpm", model_info.get("rpm")), f"{where}.params.rpm"),
        tpm=_int_or_none(params.get("tpm", model_info.get("tpm")), f"{where}.params.tpm"),
        max_parallel_requests=_int_or_none(params.get("max_parallel_requests"), f"{where}.params.max_parallel_requests"),
        listed_models=listed,
    )


def _listed_models(value: Any, pattern: str, where: str) -> tuple[str, ...]:
    """A wildcard deployment's fixed list of models, each a name its pattern matches."""
    if value is None:
        return ()
    if "*" not in pattern:
        raise ConfigError(f"{where}: only a wildcard model_name (such as `llm/*`) lists its models")
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise ConfigError(f"{where}: expected a list of model names")
    probe = Deployment(id="", model_name=pattern, provider="", upstream_model="")
    for name in value:
        if probe.matches(name) is None:
            raise ConfigError(f"{where}: {name!r} is not a name the pattern {pattern!r} matches")
    return tuple(value)


def _env_first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if env.get(name):
            return env[name]
    return None


def deployments_from_env(env: Mapping[str, str]) -> tuple[Deployment, ...]:
    """Seed 000: every provider whose key is set is served; OpenAI answers any bare model name."""
    out: list[Deployment] = []
    for provider, info in PROVIDERS.items():
        key = _env_first(env, info.key_env)
        base = _env_first(env, info.base_env) or info.api_base
        extra = {name: _env_first(env, variables) for name, variables in info.extra_env}
        extra = {k: v for k, v in extra.items() if v}
        if info.key_env and not key:
            continue
        if not info.key_env and not extra:
            continue  # (vertex_ai, bedrock: credentials come from several variables)
        if not base and info.base_required:
            continue
        names = [f"{provider}/*"] + (["*"] if provider == OPENAI else [])
        for name in names:
            out.append(
                Deployment(
                    id=f"env:{name}",
                    model_name=name,
                    provider=provider,
                    upstream_model="*",
                    api_base=base.rstrip("/") if base else None,
                    api_key=Secret(key) if key else None,
                    api_version=extra.pop("api_version", None),
                    extra=_extra_params(extra),
                )
            )
    return tuple(out)


# The sections llmgw reads, and LiteLLM's other sections, accepted and ignored (a LiteLLM config
# loads as it is). Any other top-level key is a typo to report, not a section to drop silently:
# a misspelt `model_list` would otherwise serve every provider of the environment.
SECTIONS = ("model_list", "general_settings", "litellm_settings", "router_settings")
IGNORED_SECTIONS = frozenset(
    {
        "environment_variables",
        "callback_settings",
        "credential_list",
        "guardrails",
        "mcp_servers",
        "files_settings",
        "finetune_settings",
        "assistant_settings",
        "vector_store_registry",
        "search_tools",
        "prompts",
    }
)


def check_sections(raw: dict[str, Any], path: str | os.PathLike[str]) -> None:
    for name in raw:
        if name in SECTIONS or name in IGNORED_SECTIONS:
            continue
        close = difflib.get_close_matches(str(name), SECTIONS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"config file {path}: unknown section {name!r}: {hint}known sections: {', '.join(SECTIONS)}")


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong, and where (`line 2, column 1`)."""
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def read_config_file(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The config file's top-level mapping, its sections checked (empty without a file)."""
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    check_sections(raw, path)
    return raw


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    env = os.environ if env is None else env
    raw = read_config_file(path)
    model_list = raw.get("model_list")
    if model_list is None:
        deployments = deployments_from_env(env)
    elif isinstance(model_list, list):
        deployments = tuple(parse_deployment(i, e, env) for i, e in enumerate(model_list))
    else:
        raise ConfigError("model_list: expected a list")
    ids = [d.id for d in deployments]
    if len(set(ids)) != len(ids):
        raise ConfigError("model_list: deployment ids (model_info.id) must be unique")
    general = raw.get("general_settings") or {}
    if not isinstance(general, dict):
        raise ConfigError("general_settings: expected a mapping")
    master = (
        env.get("LLMGW_MASTER_KEY")
        or env.get("LITELLM_MASTER_KEY")
        or resolve_env(general.get("master_key"), env, "general_settings.master_key")
    )
    return GatewayConfig(
        deployments=deployments,
        master_key=Secret(str(master)) if master else None,
        general_settings={k: v for k, v in general.items() if k != "master_key"},
        litellm_settings=raw.get("litellm_settings") or {},
        router_settings=raw.get("router_settings") or {},
    )
