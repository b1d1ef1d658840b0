"""Token counts without the provider: an offline tokenizer (toktok, vocabularies compiled in, nothing
downloaded at run time) for the places where the gateway must know a count before or without the
provider's own: `/v1/messages/count_tokens` for non-Anthropic deployments, a capped stream's budget
stop, a native answer whose usage cannot be read.

OpenAI's models get their own encoding (o200k for the GPT-4o, GPT-4.1, GPT-5 and o-series
families, cl100k for GPT-4 and GPT-3.5); every other model is estimated with o200k, which counts
within a few percent of Anthropic's, Gemini's and Llama's tokenizers on English text and code.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Protocol


class _Counter(Protocol):
    def __call__(self, texts: Sequence[str], encoding: str, threads: int) -> list[int]: ...


CL100K = "cl100k_base"
O200K = "o200k_base"
_CL100K_PREFIXES = ("gpt-4-", "gpt-3.5", "text-embedding-3", "text-embedding-ada", "gpt-35")


def encoding_for(model: str) -> str:
    """The encoding that counts `model`'s tokens exactly (OpenAI's) or best estimates them."""
    name = model.rsplit("/", 1)[-1].lower()
    if name == "gpt-4" or name.startswith(_CL100K_PREFIXES):
        return CL100K
    return O200K


@cache
def _counter() -> _Counter:
    import toktok  # loaded on first use: about 0.4 s and 70 MiB, paid only by a process that counts

    def count(texts: Sequence[str], encoding: str, threads: int) -> list[int]:
        return toktok.batch_count(texts, encoding, threads=threads)

    return count


def count_tokens(text: str, model: str) -> int:
    """Tokens of `text` for `model` (exact for OpenAI's encodings, an estimate for others)."""
    if not text:
        return 0
    return _counter()([text], encoding_for(model), 1)[0]


def count_many(texts: Sequence[str], model: str) -> list[int]:
    """Tokens of each text, counted in one call."""
    if not texts:
        return []
    return _counter()(texts, encoding_for(model), 1)
