"""What an image generation request asks for, in the units it is priced by (shared by the edge's
worst case and the workers' metering).

OpenAI's image API (https://platform.openai.com/docs/api-reference/images/create) defaults
`size` to 1024x1024 and `quality` to `standard` for dall-e-2 and dall-e-3; gpt-image models
default both to `auto` and are billed by tokens, their image output tokens set by quality and
size (https://platform.openai.com/docs/guides/image-generation, "Cost and latency").
"""

from __future__ import annotations

from llmgw.contracts import Units

DALL_E_DEFAULT_SIZE = "1024x1024"
DALL_E_DEFAULT_QUALITY = "standard"

# gpt-image models: image output tokens by quality and size (an `auto` one counts as its most).
GPT_IMAGE_OUTPUT_TOKENS: dict[str, dict[str, int]] = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}


def is_dall_e(model: str) -> bool:
    return model.rsplit("/", 1)[-1].startswith("dall-e")


def is_token_billed(model: str) -> bool:
    """gpt-image models report and are billed by tokens."""
    return model.rsplit("/", 1)[-1].startswith("gpt-image")


def image_units(model: str, images: int, size: str | None, quality: str | None) -> Units:
    """`images` images of `size` and `quality` as asked (OpenAI's defaults for dall-e models;
    `auto` or nothing stays unnamed, priced by the entry for any size or quality)."""
    if is_dall_e(model):
        size, quality = size or DALL_E_DEFAULT_SIZE, quality or DALL_E_DEFAULT_QUALITY
    return Units(
        images=images,
        image_size=size if size not in (None, "auto") else None,
        image_quality=quality if quality not in (None, "auto") else None,
    )


def image_output_tokens(model: str, size: str | None, quality: str | None) -> int | None:
    """The most output tokens one image of a gpt-image model can cost (None: not token-billed)."""
    if not is_token_billed(model):
        return None
    by_size = GPT_IMAGE_OUTPUT_TOKENS.get(quality or "", GPT_IMAGE_OUTPUT_TOKENS["high"])
    return by_size.get(size or "", max(by_size.values()))
