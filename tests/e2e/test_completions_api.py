"""`POST /v1/completions` through the whole gateway, driven by the official `openai` SDK: forwarded
to an OpenAI-family deployment that serves the legacy API (bench/fake_openai.py), translated to
chat for one that does not and for an Anthropic deployment (bench/fake_anthropic.py), whole and
streamed; every request one usage row with the fake's tokens at the deployment's prices."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.e2e.stack import MASTER_KEY, Stack
from tests.procs import FakeUpstream

pytestmark = pytest.mark.e2e

ANTHROPIC_KEY = "sk-ant-e2e-completions-0001"
PRICES = {  # USD per token, set on the deployments (input, output)
    "text-native": (1.5e-06, 2e-06),
    "text-via-chat": (1.5e-07, 6e-07),
    "claude": (8e-07, 4e-06),
}
PROMPT = "Once upon a time"  # 4 words


@pytest.fixture(scope="module")
def anthropic_fake(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeUpstream(tmp_path_factory.mktemp("anthropic"), ANTHROPIC_KEY, module="bench.fake_anthropic").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(nats_server, upstream, anthropic_fake, tmp_path_factory: pytest.TempPathFactory):
    deployments = {
        "text-native": ("openai/gpt-3.5-turbo-instruct", upstream.base_url, "E2E_UPSTREAM_KEY", None),
        "text-via-chat": ("openai/gpt-4o-mini", upstream.base_url, "E2E_UPSTREAM_KEY", "false"),
        "claude": ("anthropic/claude-3-5-haiku-x", anthropic_fake.root_url, "E2E_ANTHROPIC_KEY", None),
    }
    lines = ["model_list:"]
    for name, (model, base, key, completions_api) in deployments.items():
        lines += [
            f"  - model_name: {name}",
            "    params:",
            f"      model: {model}",
            f"      api_base: {base}",
            f"      api_key: os.environ/{key}",
            f"      input_cost_per_token: {PRICES[name][0]}",
            f"      output_cost_per_token: {PRICES[name][1]}",
        ]
        if completions_api is not None:
            lines.append(f"      completions_api: {completions_api}")
    lines += ["general_settings:", "  master_key: os.environ/E2E_MASTER_KEY", ""]
    s = Stack(
        tmp_path_factory.mktemp("stack"),
        nats_server.url,
        "e2ecompletions",
        upstream,
        {"E2E_ANTHROPIC_KEY": ANTHROPIC_KEY},
        config="\n".join(lines),
    ).start()
    yield s
    s.stop()


def complete(stack: Stack, **kwargs):
    raw = stack.client().completions.with_raw_response.create(**kwargs)
    return raw.headers["x-request-id"], raw.parse()


def stream(stack: Stack, **kwargs):
    raw = stack.client().completions.with_raw_response.create(stream=True, **kwargs)
    return raw.headers["x-request-id"], list(raw.parse())


def assert_metered(stack: Stack, request_id: str, group: str, prompt: int, completion: int, provider: str) -> dict:
    row = stack.usage_rows([request_id])[request_id]
    assert (row["model_group"], row["provider"], row["operation"]) == (group, provider, "completions")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)
    assert (row["status"], row["http_status"], row["usage_source"]) == ("success", 200, "provider")
    price_in, price_out = PRICES[group]
    assert row["cost"] == pytest.approx(prompt * price_in + completion * price_out, abs=1e-9) and row["cost_known"] in (1, True)
    return row


def texts(chunks) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            out[choice.index] = out.get(choice.index, "") + choice.text
    return out


# ---- forwarded to a deployment that serves /completions -------------------------------------------


def test_native_whole_answer_with_echo_and_logprobs(stack, upstream):
    request_id, answer = complete(stack, model="text-native", prompt=PROMPT, max_tokens=3, echo=True, logprobs=2)
    assert answer.object == "text_completion" and len(answer.choices) == 1
    assert answer.choices[0].text == PROMPT + "w0 w1 w2" and answer.choices[0].finish_reason == "length"
    assert answer.choices[0].logprobs.tokens == ["w0", " w1", " w2"]  # relayed as the server wrote it
    assert len(answer.choices[0].logprobs.top_logprobs[0]) == 2
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 3)
    assert upstream.stats()["last_request"]["model"] == "gpt-3.5-turbo-instruct"
    assert_metered(stack, request_id, "text-native", 4, 3, "openai")


def test_native_list_of_prompts_n_and_suffix(stack, upstream):
    request_id, answer = complete(
        stack, model="text-native", prompt=["one two", "three four five"], n=2, max_tokens=2, suffix="END"
    )
    assert sorted(c.index for c in answer.choices) == [0, 1, 2, 3]  # prompt * n + answer
    assert {c.text for c in answer.choices} == {"w0 w1"}
    assert upstream.stats()["last_request"]["suffix"] == "END"
    assert_metered(stack, request_id, "text-native", 5, 2 * 2 * 2, "openai")


def test_native_default_length_is_the_apis_sixteen(stack, upstream):
    request_id, answer = complete(stack, model="text-native", prompt=PROMPT)
    assert answer.choices[0].text.split() == [f"w{i}" for i in range(16)]
    assert upstream.stats()["last_request"]["max_tokens"] == 16  # made explicit: the worst case holds
    assert_metered(stack, request_id, "text-native", 4, 16, "openai")


def test_native_stream_with_usage(stack):
    request_id, chunks = stream(stack, model="text-native", prompt=PROMPT, max_tokens=4, stream_options={"include_usage": True})
    assert all(c.object == "text_completion" for c in chunks)
    assert texts(chunks) == {0: "w0 w1 w2 w3"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4, 4)
    row = assert_metered(stack, request_id, "text-native", 4, 4, "openai")
    assert row["stream"] in (1, True)


# ---- translated to chat ------------------------------------------------------------------------


def test_translated_on_an_anthropic_deployment_whole(stack, anthropic_fake):
    request_id, answer = complete(stack, model="claude", prompt=PROMPT, max_tokens=3, echo=True)
    assert answer.object == "text_completion" and answer.id.startswith("cmpl-")
    assert answer.choices[0].text == PROMPT + "w0 w1 w2" and answer.choices[0].finish_reason == "length"
    sent = anthropic_fake.stats()["last_request"]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}] and sent["max_tokens"] == 3
    # the fake counts 4 words + 1 message of prompt
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 3)
    assert_metered(stack, request_id, "claude", 5, 3, "anthropic")


def test_translated_n_and_prompts_are_one_chat_call_each(stack):
    request_id, answer = complete(stack, model="claude", prompt=["one two", "three"], n=2, max_tokens=2)
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert all(c.text == "w0 w1" for c in answer.choices)
    # prompts: (2 words + 1) twice and (1 word + 1) twice; 2 tokens for each of the 4 answers
    assert_metered(stack, request_id, "claude", 3 + 3 + 2 + 2, 8, "anthropic")


def test_translated_stream_on_anthropic(stack):
    request_id, chunks = stream(stack, model="claude", prompt=PROMPT, max_tokens=3, stream_options={"include_usage": True})
    assert all(c.object == "text_completion" for c in chunks)
    assert texts(chunks) == {0: "w0 w1 w2"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 3)
    assert_metered(stack, request_id, "claude", 5, 3, "anthropic")


def test_translated_for_an_openai_chat_model(stack, upstream):
    request_id, answer = complete(stack, model="text-via-chat", prompt=PROMPT, max_tokens=2)
    assert answer.choices[0].text == "w0 w1"
    assert upstream.stats()["last_request"]["messages"] == [{"role": "user", "content": PROMPT}]
    assert_metered(stack, request_id, "text-via-chat", 5, 2, "openai")

    request_id, chunks = stream(stack, model="text-via-chat", prompt=PROMPT, max_tokens=2)
    assert texts(chunks) == {0: "w0 w1"} and all(c.usage is None for c in chunks)  # no usage chunk unasked
    assert_metered(stack, request_id, "text-via-chat", 5, 2, "openai")


def test_what_chat_cannot_express_is_refused_naming_the_field(stack):
    for extra, param in (({"suffix": "END"}, "suffix"), ({"logprobs": 1}, "logprobs"), ({"prompt": [1, 2, 3]}, "prompt")):
        with pytest.raises(openai.BadRequestError) as caught:
            complete(stack, **{"model": "claude", "prompt": PROMPT, "max_tokens": 2, **extra})
        assert caught.value.body["param"] == param, extra
        request_id = caught.value.response.headers["x-request-id"]
        row = stack.usage_rows([request_id])[request_id]
        assert (row["status"], row["http_status"], row["cost"]) == ("upstream_error", 400, 0)


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-native"}, "prompt"),
        ({"prompt": PROMPT}, "model"),
        ({"model": "text-native", "prompt": []}, "prompt"),
        ({"model": "text-native", "prompt": ["a", 1]}, "prompt"),
        ({"model": "text-native", "prompt": PROMPT, "n": 0}, "n"),
        ({"model": "text-native", "prompt": PROMPT, "n": 3, "best_of": 2}, "best_of"),
        ({"model": "text-native", "prompt": PROMPT, "logprobs": 9}, "logprobs"),
        ({"model": "text-native", "prompt": PROMPT, "max_tokens": "many"}, "max_tokens"),
    ],
)
def test_bad_bodies_are_400_naming_the_field_and_only_a_refused_row(stack, upstream, body, param):
    before = upstream.stats()["requests"]
    resp = httpx.post(
        f"{stack.base_url}/v1/completions", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    request_id = resp.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["status"], row["http_status"], row["cost"], row["prompt_tokens"]) == ("refused", 400, 0, 0)
    assert upstream.stats()["requests"] == before


def test_served_under_every_openai_path(stack):
    for path in ("/v1/completions", "/completions", "/openai/v1/completions", "/openai/completions"):
        resp = httpx.post(
            stack.base_url + path,
            json={"model": "text-native", "prompt": PROMPT, "max_tokens": 1},
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            timeout=10,
        )
        assert resp.status_code == 200 and resp.json()["choices"][0]["text"] == "w0", (path, resp.text)
