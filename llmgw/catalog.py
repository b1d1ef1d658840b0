"""Providers llmgw knows by name: which adapter family speaks to them, and their defaults.

The edge only needs the names (to pick a request subject); the workers pick the adapter by family.
"""

from __future__ import annotations

import difflib

import msgspec


class ProviderInfo(msgspec.Struct, frozen=True):
    family: str  # adapter family in workers.providers
    api_base: str | None  # default base URL (None: the deployment must give one)
    key_env: tuple[str, ...] = ()  # environment variables that hold its key (seed 000)
    base_env: tuple[str, ...] = ()  # environment variables that override its base URL
    # provider-specific params read from the environment when the config does not give them:
    # (param name, environment variables to try in order)
    extra_env: tuple[tuple[str, tuple[str, ...]], ...] = ()
    base_required: bool = True  # False: the adapter builds the URL from other params (region, ...)
    # Native passthrough: where the provider's own API names the model in the path rather than in
    # the body's `model` (a regex searched in the path below /<provider>: group `model`, and an
    # optional group `method`, a stream when it holds "stream", as Gemini's streamGenerateContent).
    native_model_path: str | None = None


OPENAI = "openai"
GOOGLE_MODEL_PATH = r"/models/(?P<model>[^/:]+)(?::(?P<method>\w+))?$"  # .../models/gemini-1.5-pro:generateContent
AZURE_DEPLOYMENT_PATH = r"^/openai/deployments/(?P<model>[^/]+)/"  # /openai/deployments/<deployment>/chat/...

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
    "anyscale": ProviderInfo("openai", "https://api.endpoints.anyscale.com/v1", ("ANYSCALE_API_KEY",), ("ANYSCALE_API_BASE",)),
    "mistral": ProviderInfo("openai", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), ("MISTRAL_API_BASE",)),
    "fireworks_ai": ProviderInfo(
        "openai",
        "https://api.fireworks.ai/inference/v1",
        ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"),
        ("FIREWORKS_API_BASE",),
    ),
    "deepseek": ProviderInfo("openai", "https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), ("DEEPSEEK_API_BASE",)),
    "huggingface": ProviderInfo(
        "openai", "https://router.huggingface.co/v1", ("HF_API_KEY", "HUGGINGFACE_API_KEY"), ("HF_API_BASE",)
    ),
    # Azure OpenAI: deployment URLs, `api-version`, `api-key` header (api_base is the resource URL).
    "azure": ProviderInfo(
        "azure",
        None,
        ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
        ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
        (("api_version", ("AZURE_API_VERSION", "OPENAI_API_VERSION")),),
        native_model_path=AZURE_DEPLOYMENT_PATH,
    ),
    "anthropic": ProviderInfo("anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",), ("ANTHROPIC_API_BASE",)),
    "gemini": ProviderInfo(
        "gemini",
        "https://generativelanguage.googleapis.com",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        ("GEMINI_API_BASE",),
        native_model_path=GOOGLE_MODEL_PATH,
    ),
    "vertex_ai": ProviderInfo(
        "vertex_ai",
        None,
        (),
        ("VERTEXAI_API_BASE",),
        (
            ("vertex_project", ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")),
            ("vertex_location", ("VERTEXAI_LOCATION", "VERTEX_LOCATION")),
            ("vertex_credentials", ("VERTEXAI_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS")),
        ),
        base_required=False,
        native_model_path=GOOGLE_MODEL_PATH,
    ),
    "cohere": ProviderInfo("cohere", "https://api.cohere.com", ("COHERE_API_KEY", "CO_API_KEY"), ("COHERE_API_BASE",)),
    # HuggingFace's serverless Inference API (text generation / feature extraction task routes),
    # for models without an OpenAI-compatible route (those use `huggingface/...`).
    "huggingface_inference": ProviderInfo(
        "huggingface_inference",
        "https://router.huggingface.co/hf-inference",
        ("HF_API_KEY", "HUGGINGFACE_API_KEY"),
        ("HF_INFERENCE_API_BASE",),
    ),
    "vectara": ProviderInfo(
        "vectara",
        "https://api.vectara.io",
        ("VECTARA_API_KEY", "VECTOR_AI_API_KEY"),
        ("VECTARA_API_BASE",),
        (("vectara_corpus_key", ("VECTARA_CORPUS_KEY",)),),
    ),
    "bedrock": ProviderInfo(
        "bedrock",
        None,
        (),
        ("BEDROCK_API_BASE",),
        (
            ("aws_access_key_id", ("AWS_ACCESS_KEY_ID",)),
            ("aws_secret_access_key", ("AWS_SECRET_ACCESS_KEY",)),
            ("aws_session_token", ("AWS_SESSION_TOKEN",)),
            ("aws_region_name", ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION")),
        ),
        base_required=False,
    ),
}

# Providers a client can reach in their own wire format at /<name>/... (native passthrough).
NATIVE_ROUTES = ("openai", "azure", "anthropic", "gemini", "vertex_ai", "cohere")


class UnknownProviderError(ValueError):
    """A `<provider>/<model>` string whose provider llmgw does not know."""

    def __init__(self, model: str, provider: str) -> None:
        self.model = model
        self.provider = provider
        self.closest = closest_provider(provider)
        hint = f"did you mean {self.closest!r}? " if self.closest else ""
        super().__init__(
            f"unknown provider {provider!r} in {model!r}: {hint}known providers: {', '.join(sorted(PROVIDERS))}"
            f" (an OpenAI-compatible server: `openai/{model}` with its api_base)"
        )


def closest_provider(name: str) -> str | None:
    """The known provider name nearest to `name` (a typo's likely meaning), if any is close."""
    found = difflib.get_close_matches(name.lower(), list(PROVIDERS), n=1, cutoff=0.75)
    return found[0] if found else None


def split_model(model: str) -> tuple[str, str]:
    """`openai/gpt-4o` -> (`openai`, `gpt-4o`); a bare name (`gpt-4o`, `*`) is OpenAI's.

    A prefix that names no provider (`antropic/claude-3-5-sonnet`) raises UnknownProviderError:
    it is never taken for an OpenAI model name, which would send the request to the wrong vendor."""
    head, sep, rest = model.partition("/")
    if not sep:
        return OPENAI, model
    if head in PROVIDERS:
        return head, rest
    raise UnknownProviderError(model, head)
