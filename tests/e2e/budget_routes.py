"""Every route a client can spend through, for tests/e2e/test_budget_every_route.py: how each is
called (the official SDKs, plain HTTP for rerank and the native passthroughs), what it may cost at
worst as the gateway reserves it, and the config of priced and unpriced model groups on the fake
OpenAI (bench/fake_openai.py), Anthropic (bench/fake_anthropic.py) and Gemini
(bench/fake_gemini.py) upstreams behind it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import anthropic
import httpx
import openai

from tests.audio_files import wav_tone

IN, OUT = 1e-9, 1e-5  # USD a token: the prompt's bytes weigh little next to the answer's tokens
PER_REQUEST = 1e-4  # embeddings, moderations, rerank: a price per request (and IN a token)
PER_IMAGE = 0.04
PER_SECOND = 1e-4
PER_CHARACTER = 1.5e-5
PROMPT_SLACK = 4096 * IN  # more than any prompt here costs (a few hundred bytes at IN a byte)
TONE = wav_tone(2.5)  # the fake bills 3 s; the edge reserves the file's duration rounded up: 3 s
SPEECH = "Hello there, budget"


def config(openai_base: str, anthropic_root: str, gemini_root: str) -> str:
    tokens = (f"input_cost_per_token: {IN}", f"output_cost_per_token: {OUT}")
    per_request = (f"input_cost_per_token: {IN}", f"input_cost_per_request: {PER_REQUEST}")
    groups = [
        ("gpt", "openai/gpt-4o", openai_base, tokens),
        ("embed", "openai/text-embedding-3-small", openai_base, per_request),
        ("dalle", "openai/dall-e-3", openai_base, (f"output_cost_per_image: {PER_IMAGE}",)),
        ("whisper", "openai/whisper-1", openai_base, (f"input_cost_per_second: {PER_SECOND}",)),
        ("tts", "openai/tts-1", openai_base, (f"input_cost_per_character: {PER_CHARACTER}",)),
        ("moderation", "openai/omni-moderation-latest", openai_base, per_request),
        ("rerank", "hosted_vllm/BAAI/bge-reranker-v2-m3", openai_base, per_request),
        ("claude", "anthropic/claude-3-5-sonnet-20241022", anthropic_root, tokens),
        ("gemini", "gemini/gemini-1.5-flash", gemini_root, tokens),
    ]
    # The same kinds of model with no price anywhere (not in the shipped table, none in the config).
    for kind, provider, base in [
        ("chat", "openai", openai_base),
        ("embed", "openai", openai_base),
        ("images", "openai", openai_base),
        ("whisper", "openai", openai_base),
        ("tts", "openai", openai_base),
        ("moderation", "openai", openai_base),
        ("rerank", "hosted_vllm", openai_base),
        ("claude", "anthropic", anthropic_root),
        ("gemini", "gemini", gemini_root),
    ]:
        groups.append((f"u-{kind}", f"{provider}/nopriced-{kind}-model", base, ()))
    lines = ["model_list:"]
    for name, model, base, prices in groups:
        key = "E2E_ANTHROPIC_KEY" if model.startswith("anthropic/") else "E2E_GEMINI_KEY" if model.startswith("gemini/") else None
        lines += [f"  - model_name: {name}", "    params:", f"      model: {model}", f"      api_base: {base}"]
        lines += [f"      api_key: os.environ/{key or 'E2E_UPSTREAM_KEY'}", *[f"      {p}" for p in prices]]
    lines += ["general_settings:", "  master_key: os.environ/E2E_MASTER_KEY", ""]
    return "\n".join(lines)


@dataclass
class Outcome:
    request_id: str
    status: int  # the HTTP status of the answer
    code: str | None = None  # the error code of a refusal
    stopped: bool = False  # a stream that ended with an error event (its budget ran out)


def _openai_error(err: openai.APIStatusError) -> Outcome:
    return Outcome(err.response.headers["x-request-id"], err.status_code, err.code)


def _anthropic_error(err: anthropic.APIStatusError) -> Outcome:
    message = str(err.message)
    code = "budget_exceeded" if err.status_code == 429 else "model_price_unknown" if "no known price" in message else None
    return Outcome(err.response.headers["x-request-id"], err.status_code, code)


def _http(response: httpx.Response) -> Outcome:
    code = None
    if response.status_code >= 400:
        error = response.json().get("error")
        code = error.get("code") if isinstance(error, dict) else None
    return Outcome(response.headers["x-request-id"], response.status_code, code)


def _sdk(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30)


def _openai_call(make: Callable[[openai.OpenAI, str], object], stream: bool = False) -> Callable[[str, str, str], Outcome]:
    def call(base_url: str, key: str, model: str) -> Outcome:
        try:
            raw = make(_sdk(base_url, key), model)
        except openai.APIStatusError as err:
            return _openai_error(err)
        request_id = raw.headers["x-request-id"]  # type: ignore[attr-defined]
        if not stream:
            raw.parse()  # type: ignore[attr-defined]
            return Outcome(request_id, 200)
        try:
            for _ in raw.parse():  # type: ignore[attr-defined]
                pass
        except openai.APIError:
            return Outcome(request_id, 200, stopped=True)
        return Outcome(request_id, 200)

    return call


HELLO = [{"role": "user", "content": "Hello there"}]


def _messages(base_url: str, key: str, model: str) -> Outcome:
    client = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0, timeout=30)
    try:
        raw = client.messages.with_raw_response.create(model=model, max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    except anthropic.APIStatusError as err:
        return _anthropic_error(err)
    raw.parse()
    return Outcome(raw.headers["x-request-id"], 200)


def _post(path: str, body: dict, header: str = "authorization") -> Callable[[str, str, str], Outcome]:
    def call(base_url: str, key: str, model: str) -> Outcome:
        value = f"Bearer {key}" if header == "authorization" else key
        sent = {**body, "model": model} if "model" in body else body
        return _http(httpx.post(base_url + path.format(model=model), json=sent, headers={header: value}, timeout=30))

    return call


@dataclass
class BudgetRoute:
    name: str
    model: str  # the priced group
    unpriced: str  # the same kind of model with no price
    worst: float  # USD the gateway reserves for one call at most (prompt slack included)
    call: Callable[[str, str, str], Outcome]


def _chat(c: openai.OpenAI, m: str) -> object:
    return c.chat.completions.with_raw_response.create(model=m, messages=HELLO, max_tokens=8)  # type: ignore[arg-type]


def _chat_stream(c: openai.OpenAI, m: str) -> object:
    return c.chat.completions.with_raw_response.create(
        model=m,
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )


ROUTES = [
    BudgetRoute("chat", "gpt", "u-chat", 8 * OUT + PROMPT_SLACK, _openai_call(_chat)),
    BudgetRoute("chat-stream", "gpt", "u-chat", 8 * OUT + PROMPT_SLACK, _openai_call(_chat_stream, stream=True)),
    BudgetRoute(
        "embeddings",
        "embed",
        "u-embed",
        PER_REQUEST + PROMPT_SLACK,
        _openai_call(lambda c, m: c.embeddings.with_raw_response.create(model=m, input="hello budget")),
    ),
    BudgetRoute(
        "completions",
        "gpt",
        "u-chat",
        8 * OUT + PROMPT_SLACK,
        _openai_call(lambda c, m: c.completions.with_raw_response.create(model=m, prompt="Say hi", max_tokens=8)),
    ),
    BudgetRoute(
        "responses",
        "gpt",
        "u-chat",
        16 * OUT + PROMPT_SLACK,
        _openai_call(lambda c, m: c.responses.with_raw_response.create(model=m, input="Hi", max_output_tokens=16)),
    ),
    BudgetRoute(
        "responses-stream",
        "gpt",
        "u-chat",
        16 * OUT + PROMPT_SLACK,
        _openai_call(
            lambda c, m: c.responses.with_raw_response.create(model=m, input="Hi", max_output_tokens=16, stream=True), stream=True
        ),
    ),
    BudgetRoute(
        "images",
        "dalle",
        "u-images",
        PER_IMAGE,
        _openai_call(lambda c, m: c.images.with_raw_response.generate(model=m, prompt="a cat", n=1)),
    ),
    BudgetRoute(
        "transcription",
        "whisper",
        "u-whisper",
        3 * PER_SECOND,
        _openai_call(lambda c, m: c.audio.transcriptions.with_raw_response.create(model=m, file=("tone.wav", TONE, "audio/wav"))),
    ),
    BudgetRoute(
        "speech",
        "tts",
        "u-tts",
        len(SPEECH) * PER_CHARACTER,
        _openai_call(lambda c, m: c.audio.speech.with_raw_response.create(model=m, voice="alloy", input=SPEECH)),
    ),
    BudgetRoute(
        "moderations",
        "moderation",
        "u-moderation",
        PER_REQUEST + PROMPT_SLACK,
        _openai_call(lambda c, m: c.moderations.with_raw_response.create(model=m, input="hello budget")),
    ),
    BudgetRoute(
        "rerank",
        "rerank",
        "u-rerank",
        PER_REQUEST + PROMPT_SLACK,
        _post("/v1/rerank", {"model": "", "query": "capital of France", "documents": ["Paris", "Berlin"]}),
    ),
    BudgetRoute("messages", "gpt", "u-chat", 8 * OUT + PROMPT_SLACK, _messages),
    BudgetRoute(
        "native-openai-chat",
        "gpt",
        "u-chat",
        8 * OUT + PROMPT_SLACK,
        _post("/openai/v1/chat/completions", {"model": "", "messages": HELLO, "max_tokens": 8}),
    ),
    BudgetRoute(
        "native-openai-responses",
        "gpt",
        "u-chat",
        16 * OUT + PROMPT_SLACK,
        _post("/openai/v1/responses", {"model": "", "input": "Hi", "max_output_tokens": 16}),
    ),
    BudgetRoute(
        "native-openai-responses-stream",
        "gpt",
        "u-chat",
        16 * OUT + PROMPT_SLACK,
        _post("/openai/v1/responses", {"model": "", "input": "Hi", "max_output_tokens": 16, "stream": True}),
    ),
    BudgetRoute(
        "native-anthropic",
        "claude",
        "u-claude",
        8 * OUT + PROMPT_SLACK,
        _post("/anthropic/v1/messages", {"model": "", "max_tokens": 8, "messages": HELLO}, header="x-api-key"),
    ),
    BudgetRoute(
        "native-gemini",
        "gemini",
        "u-gemini",
        8 * OUT + PROMPT_SLACK,
        _post(
            "/gemini/v1beta/models/{model}:generateContent",
            {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}], "generationConfig": {"maxOutputTokens": 8}},
            header="x-goog-api-key",
        ),
    ),
]
