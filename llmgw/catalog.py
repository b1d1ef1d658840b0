"""Providers llmgw knows by name: which adapter family speaks to them, and their defaults.

The edge only needs the names (to pick a request subject); the workers pick the adapter by family.
"""

from __future__ import annotations

import msgspec


class ProviderInfo(msgspec.Struct, frozen=True):
    family: str  # adapter family in workers.providers
    api_base: str | None  # default base URL (None: the deployment must give one)
    key_env: tuple[str, ...] = ()  # environment variables that hold its key (seed 000)
    base_env: tuple[str, ...] = ()  # environment variables that override its base URL


OPENAI = "openai"

PROVIDERS: dict[str, ProviderInfo] = {
    "openai": ProviderInfo("openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",), ("OPENAI_API_BASE",)),
    "openai_compatible": ProviderInfo("openai", None),
    "hosted_vllm": ProviderInfo("openai", None),
    "vllm": ProviderInfo("openai", None),
    "ollama": ProviderInfo("openai", "http://127.0.0.1:11434/v1", (), ("OLLAMA_API_BASE",)),
    "together_ai": ProviderInfo(
        "openai", "https://api.together.xyz/v1", ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"), ("TOGETHER_API_BASE",)
    ),
    "groq": ProviderInfo("openai", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",), ("GROQ_API_BASE",)),
    "anyscale": ProviderInfo(
        "openai", "https://api.endpoints.anyscale.com/v1", ("ANYSCALE_API_KEY",), ("ANYSCALE_API_BASE",)
    ),
    "mistral": ProviderInfo("openai", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), ("MISTRAL_API_BASE",)),
    "fireworks_ai": ProviderInfo(
        "openai", "https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"),
        ("FIREWORKS_API_BASE",),
    ),
    "deepseek": ProviderInfo("openai", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), ("DEEPSEEK_API_BASE",)),
    "huggingface": ProviderInfo(
        "openai", "https://router.huggingface.co/v1", ("HF_API_KEY", "HUGGINGFACE_API_KEY"), ("HF_API_BASE",)
    ),
}


def split_model(model: str) -> tuple[str, str]:
    """`openai/gpt-4o` -> (`openai`, `gpt-4o`); a string without a known provider is OpenAI's."""
    head, sep, rest = model.partition("/")
    if sep and head in PROVIDERS:
        return head, rest
    return OPENAI, model
