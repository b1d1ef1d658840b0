"""An Azure OpenAI deployment end to end: the official `openai` SDK -> gateway -> worker -> the
fake OpenAI upstream's Azure routes (/openai/deployments/{deployment}/..., `api-key` header)."""

from __future__ import annotations

import openai
import pytest

from tests.e2e.stack import Stack
from tests.procs import FakeUpstream

pytestmark = pytest.mark.e2e

AZURE_KEY = "azure-provider-e2e-secret-5151"
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory):
    f = FakeUpstream(tmp_path_factory.mktemp("up"), AZURE_KEY).start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def stack(nats_server, fake, tmp_path_factory: pytest.TempPathFactory):
    groups = {"gpt-azure": "my-gpt4o", "embed-azure": "my-embeddings", "azure-limited": "fake-error-429"}
    lines = ["model_list:"]
    for name, deployment in groups.items():
        lines += [
            f"  - model_name: {name}",
            "    params:",
            f"      model: azure/{deployment}",
            f"      api_base: {fake.root_url}",
            "      api_key: os.environ/E2E_UPSTREAM_KEY",
            "      api_version: 2024-10-21",
        ]
    lines += [
        "  - model_name: azure-wrong-key",
        "    params:",
        "      model: azure/my-gpt4o",
        f"      api_base: {fake.root_url}",
        "      api_key: azure-stale-key-000",
        "general_settings:",
        "  master_key: os.environ/E2E_MASTER_KEY",
        "",
    ]
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2eprovazure", fake, {}, config="\n".join(lines)).start()
    yield s
    s.stop()


def test_chat_reaches_the_azure_deployment_and_is_metered(stack, fake):
    raw = stack.client().chat.completions.with_raw_response.create(model="gpt-azure", messages=HELLO, max_tokens=3)
    request_id, completion = raw.headers["x-request-id"], raw.parse()
    assert completion.choices[0].message.content == "w0 w1 w2"
    assert completion.model == "my-gpt4o"  # the fake answers with the deployment name from the URL
    assert fake.stats()["by_model"]["my-gpt4o"] >= 1
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 3)
    assert row["provider"] == "azure" and row["upstream_model"] == "my-gpt4o" and row["status"] == "success"


def test_stream_with_usage(stack):
    raw = stack.client().chat.completions.with_raw_response.create(
        model="gpt-azure", messages=HELLO, max_tokens=4, stream=True, stream_options={"include_usage": True}
    )
    request_id = raw.headers["x-request-id"]
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w0 w1 w2 w3"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 4) and row["stream"] in (1, True)


def test_embeddings(stack):
    raw = stack.client().embeddings.with_raw_response.create(model="embed-azure", input=["one two three", "four"])
    request_id, result = raw.headers["x-request-id"], raw.parse()
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    row = stack.usage_rows([request_id])[request_id]
    assert row["prompt_tokens"] == 4 and row["provider"] == "azure" and row["operation"] == "embeddings"


def test_errors(stack):
    with pytest.raises(openai.RateLimitError) as info:
        stack.client().chat.completions.create(model="azure-limited", messages=HELLO)
    request_id = info.value.response.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert row["http_status"] == 429 and row["status"] == "upstream_error"
    with pytest.raises(openai.APIStatusError) as info:
        stack.client().chat.completions.create(model="azure-wrong-key", messages=HELLO)
    assert info.value.status_code == 502 and "azure-stale-key-000" not in str(info.value.body)
