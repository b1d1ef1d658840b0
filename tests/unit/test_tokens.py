"""The offline tokenizer: OpenAI's encodings give OpenAI's counts, other models an o200k estimate."""

from llmgw.tokens import CL100K, O200K, count_many, count_tokens, encoding_for


def test_openai_models_get_their_own_encoding():
    assert encoding_for("gpt-4o-mini") == O200K
    assert encoding_for("openai/gpt-4.1") == O200K
    assert encoding_for("o3-mini") == O200K
    assert encoding_for("gpt-4") == CL100K
    assert encoding_for("gpt-4-turbo") == CL100K
    assert encoding_for("gpt-3.5-turbo") == CL100K
    assert encoding_for("claude-sonnet-4-5") == O200K


def test_counts_are_the_encodings_counts():
    # "hello world" is two tokens in both encodings; a thousand repeats of it are 2,000 in cl100k
    assert count_tokens("hello world", "gpt-4o") == 2
    assert count_tokens("hello world" * 1000, "gpt-4") == 2000
    assert count_tokens("", "gpt-4o") == 0
    assert count_many(["hello world", "how many tokens?"], "gpt-4") == [2, 4]
    assert count_many([], "gpt-4o") == []
