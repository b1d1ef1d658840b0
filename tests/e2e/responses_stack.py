"""The gateway the Responses API modules run against: model groups on the fake OpenAI upstream
(native Responses deployments, an Azure one, chat-only ones) and on the fake Anthropic upstream
(translated), each priced in the config so a usage row's cost is its tokens times these prices."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream

ANTHROPIC_KEY = "sk-ant-upstream-responses-e2e-777"
AZURE_KEY_ENV = "E2E_UPSTREAM_KEY"

# model group -> (provider/model, api base kind, extra params lines), all priced alike per kind
INPUT_PRICE = 2.0e-06
OUTPUT_PRICE = 8.0e-06


def config_text(openai_base: str, openai_root: str, anthropic_root: str) -> str:
    groups = [
        ("gpt-4o", "openai/gpt-4o", openai_base, ()),  # native (an OpenAI deployment)
        ("agent", "openai/fake-agent", openai_base, ()),  # native, a scripted agent
        ("stream-fail", "openai/fake-stream-fail", openai_base, ()),
        ("azure-gpt", "azure/gpt-4o", openai_root, ("      api_version: 2024-10-21",)),  # native, Azure's v1 path
        ("compat", "hosted_vllm/gpt-4o", openai_base, ("      responses_api: true",)),  # opted in
        ("no-native", "openai/gpt-4o", openai_base, ("      responses_api: false",)),  # opted out: chat
        ("chat-only", "hosted_vllm/gpt-4o", openai_base, ()),  # translated to chat (OpenAI-compatible server)
        ("slow-native", "openai/fake-chunk-delay-100", openai_base, ()),  # native, 100 ms before each text delta
        ("slow-chat", "hosted_vllm/fake-chunk-delay-100", openai_base, ()),  # translated, 100 ms between chunks
        ("slower-native", "openai/fake-chunk-delay-400", openai_base, ()),  # native, 400 ms before each text delta
        ("slower-chat", "hosted_vllm/fake-chunk-delay-400", openai_base, ()),  # translated (and chat), 400 ms between chunks
    ]
    lines = ["model_list:"]
    for name, model, base, extra in groups:
        lines += [
            f"  - model_name: {name}",
            "    params:",
            f"      model: {model}",
            f"      api_base: {base}",
            f"      api_key: os.environ/{AZURE_KEY_ENV}",
            f"      input_cost_per_token: {INPUT_PRICE}",
            f"      output_cost_per_token: {OUTPUT_PRICE}",
            *extra,
        ]
    lines += [
        "  - model_name: claude",  # translated (Anthropic)
        "    params:",
        "      model: anthropic/claude-3-5-sonnet-20241022",
        f"      api_base: {anthropic_root}",
        f"      api_key: {ANTHROPIC_KEY}",
        f"      input_cost_per_token: {INPUT_PRICE}",
        f"      output_cost_per_token: {OUTPUT_PRICE}",
        "general_settings:",
        "  master_key: os.environ/E2E_MASTER_KEY",
        "",
    ]
    return "\n".join(lines)


def start_stack(
    root: Path, nats_url: str, prefix: str, upstream: FakeUpstream, anthropic: FakeUpstream, env: dict[str, str] | None = None
) -> Stack:
    config = config_text(upstream.base_url, upstream.root_url, anthropic.root_url)
    return Stack(root, nats_url, prefix, upstream, env or {}, config=config).start()


def new_key(stack: Stack, **params: object) -> str:
    response = httpx.post(
        f"{stack.base_url}/key/generate", headers={"authorization": f"Bearer {MASTER_KEY}"}, json=params, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["key"]


def cost_of(prompt_tokens: int, completion_tokens: int) -> float:
    return prompt_tokens * INPUT_PRICE + completion_tokens * OUTPUT_PRICE
