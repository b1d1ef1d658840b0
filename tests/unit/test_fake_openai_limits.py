"""The fake OpenAI upstream keeps to the real API's bounds where a fuzzed request could otherwise
make it work for minutes on one answer (and stall every test after it on the same stack)."""

from __future__ import annotations

import msgspec
import pytest

from bench.fake_openai_payloads import MAX_EMBEDDING_DIM, BadRequest, embeddings


def test_embeddings_take_dimensions_up_to_the_largest_models_and_refuse_more() -> None:
    answer = msgspec.json.decode(embeddings({"model": "e", "input": "x", "dimensions": MAX_EMBEDDING_DIM}))
    assert len(answer["data"][0]["embedding"]) == MAX_EMBEDDING_DIM
    with pytest.raises(BadRequest) as refused:
        embeddings({"model": "e", "input": "x", "dimensions": 10**7})
    assert "dimensions" in str(refused.value.args)
