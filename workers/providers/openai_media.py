"""What OpenAI-format image generations and moderations used, read from their answers.

References: https://platform.openai.com/docs/api-reference/images/object (`data[]`; gpt-image
models add `usage` with input and output tokens, and the `size` and `quality` they made) and
https://platform.openai.com/docs/api-reference/moderations/object (no usage: the input is counted
here, at 4 characters a token, and marked estimated).
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmgw.image_units import image_units
from workers.providers.errors import invalid_answer
from workers.providers.request_body import Fields, json_value
from workers.usage import Usage, estimate_tokens


class _ImageTokens(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None


class _ImagesAnswer(msgspec.Struct):
    data: list[msgspec.Raw] = []
    usage: _ImageTokens | None = None
    size: str | None = None
    quality: str | None = None


_images_decoder = msgspec.json.Decoder(_ImagesAnswer)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def images_answer_to_usage(content: bytes, upstream_model: str, fields: Fields) -> Usage:
    """Tokens where the answer reports them; else the images made, by the size and quality the
    answer (or else the request) names."""
    try:
        answer = _images_decoder.decode(content)
    except msgspec.DecodeError:
        raise invalid_answer() from None
    tokens = answer.usage
    if tokens is not None and (tokens.input_tokens or tokens.output_tokens):
        return Usage(prompt_tokens=tokens.input_tokens or 0, completion_tokens=tokens.output_tokens or 0)
    size = answer.size or _text(json_value(fields.get("size")))
    quality = answer.quality or _text(json_value(fields.get("quality")))
    return Usage(units=image_units(upstream_model, len(answer.data), size, quality))


def moderation_input_usage(fields: Fields) -> Usage:
    """The input's text, counted (image parts are not tokens the gateway can count)."""
    value = json_value(fields.get("input"))
    items = value if isinstance(value, list) else [value]
    chars = sum(len(i) if isinstance(i, str) else len(i.get("text") or "") if isinstance(i, dict) else 0 for i in items)
    return Usage(prompt_tokens=estimate_tokens(chars), estimated=True)
