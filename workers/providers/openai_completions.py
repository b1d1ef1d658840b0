"""Which OpenAI-family deployments serve the legacy `/completions` API themselves, and the body they get.

Reference: https://platform.openai.com/docs/api-reference/completions. OpenAI itself serves it
only for its completion models (gpt-3.5-turbo-instruct, davinci-002, babbage-002); self-hosted
servers (vLLM, Ollama, an `openai/...` deployment with its own `api_base`) and Together,
Fireworks and Anyscale serve it for their models; Groq, Mistral, DeepSeek's main API and the
HuggingFace router do not. A deployment's `completions_api: true|false` overrides the rule.
Deployments that do not serve it get the request translated to chat
(workers/providers/completions_chat.py).
"""

from __future__ import annotations

from typing import Any

from llmgw.catalog import PROVIDERS
from llmgw.config import Deployment
from workers.providers.completions_chat import DEFAULT_MAX_TOKENS
from workers.providers.request_body import Fields, RequestBody, json_value

COMPLETIONS_SERVERS = frozenset({"openai_compatible", "hosted_vllm", "vllm", "ollama", "together_ai", "fireworks_ai", "anyscale"})
COMPLETION_MODELS = ("gpt-3.5-turbo-instruct", "gpt-35-turbo-instruct", "davinci-002", "babbage-002")
SETTING = "completions_api"


def setting(value: Any) -> bool | None:
    """A deployment's `completions_api` (YAML's true/false, or the text of an environment variable)."""
    if isinstance(value, bool) or value is None:
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def speaks_completions(deployment: Deployment, upstream_model: str) -> bool:
    configured = setting(deployment.option(SETTING))
    if configured is not None:
        return configured
    if deployment.provider in COMPLETIONS_SERVERS or upstream_model.startswith(COMPLETION_MODELS):
        return True
    vendor = PROVIDERS[deployment.provider].api_base
    return deployment.provider == "openai" and vendor is not None and (deployment.api_base or vendor).rstrip("/") != vendor


def _prefixed(prompt: Any, preamble: str) -> Any:
    if isinstance(prompt, str):
        return preamble + prompt
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return [preamble + p for p in prompt]
    return prompt  # token ids: nothing to put a text before


def completions_fields(body: RequestBody, system_prompts: list[str]) -> Fields:
    """The client's fields with the API's default length made explicit (so the budget's worst
    case holds whatever the server's own default) and the policy prompts before each text prompt."""
    fields = dict(body.fields())
    if json_value(fields.get("max_tokens")) is None:
        fields["max_tokens"] = DEFAULT_MAX_TOKENS
    if system_prompts and "prompt" in fields:
        fields["prompt"] = _prefixed(json_value(fields["prompt"]), "".join(p + "\n\n" for p in system_prompts))
    return fields
