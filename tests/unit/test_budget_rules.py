"""The rules that keep every route inside its budget: a model without a price is refused (or,
allowed by the operator, served at cost 0), a worst case counts every answer and the policy's
prompts, a request that cannot be capped must fit whole, a stream's budget stop counts tokens (the
provider's or the tokenizer's, never one a chunk), and a native answer without usage is estimated."""

from __future__ import annotations

import msgspec
import pytest

from gateway.budgets import WorstCase, price_unknown, priced, worst_case_cost
from gateway.native_api import requested_model
from gateway.pipeline import policy_bytes
from gateway.settings import allow_unpriced_models
from llmgw.config import ConfigError, Deployment, GatewayConfig
from llmgw.contracts import Caller, ErrorCode, Operation, Units, UpstreamRequest
from llmgw.prices import Price, price_for
from llmgw.tokens import count_tokens
from workers.budget_cap import COUNT_EVERY_BYTES, StreamMeter, apply_cost_cap, completion_allowance, prompt_bytes_of
from workers.providers.native import estimated_native_usage
from workers.providers.request_body import RequestBody

PRICE = Price(input=1e-6, output=1e-5, cached_input=1e-6, max_output_tokens=1000)


def deployment(**prices: object) -> Deployment:
    return Deployment(id="d/0", model_name="m", provider="openai", upstream_model="nopriced-model-x", **prices)  # type: ignore[arg-type]


def test_a_model_without_a_price_is_named_with_the_fields_that_price_it() -> None:
    d = deployment()
    assert price_for(d, "nopriced-model-x") is None and not priced(None, WorstCase(10))
    error = price_unknown("m", d, "nopriced-model-x", WorstCase(10, units=Units(images=2)))
    assert (error.status, error.code, error.param) == (400, ErrorCode.MODEL_PRICE_UNKNOWN, "model")
    for named in ("`m`", "input_cost_per_token", "output_cost_per_token", "output_cost_per_image", "allow_unpriced_models"):
        assert named in error.message
    # A price of 0 is a price; tokens priced count even where a unit has no price of its own.
    assert priced(price_for(deployment(input_cost_per_token=0.0), "nopriced-model-x"), WorstCase(10))
    assert priced(PRICE, WorstCase(10, units=Units(characters=5)))
    assert not priced(Price(0.0, 0.0, 0.0), WorstCase(10, units=Units(characters=5)))
    assert priced(Price(0.0, 0.0, 0.0, character=1e-6), WorstCase(10, units=Units(characters=5)))


def test_allowing_unpriced_models_is_an_env_var_or_a_general_setting() -> None:
    assert allow_unpriced_models(GatewayConfig(), {}) is False
    assert allow_unpriced_models(GatewayConfig(general_settings={"allow_unpriced_models": True}), {}) is True
    assert allow_unpriced_models(GatewayConfig(), {"LLMGW_ALLOW_UNPRICED_MODELS": "true"}) is True
    on = GatewayConfig(general_settings={"allow_unpriced_models": "yes"})
    assert allow_unpriced_models(on, {"LLMGW_ALLOW_UNPRICED_MODELS": "false"}) is False
    with pytest.raises(ConfigError, match="LLMGW_ALLOW_UNPRICED_MODELS"):
        allow_unpriced_models(GatewayConfig(), {"LLMGW_ALLOW_UNPRICED_MODELS": "maybe"})


def test_the_worst_case_pays_every_answer_and_an_uncappable_request_must_fit_whole() -> None:
    one, least = worst_case_cost(PRICE, WorstCase(100, max_tokens=50))
    three, _ = worst_case_cost(PRICE, WorstCase(100, max_tokens=50, n=3))
    assert one == pytest.approx(100 * 1e-6 + 50 * 1e-5) and three == pytest.approx(100 * 1e-6 + 150 * 1e-5)
    assert least == pytest.approx(25 * 1e-6 + 1e-5)
    whole, needed = worst_case_cost(PRICE, WorstCase(100, max_tokens=50, capped=False))
    assert needed == whole == one
    assert policy_bytes(["Sé breve."]) == len("Sé breve.".encode()) == 10


def request(
    body: bytes, *, stream: bool, cost_cap: float, answers: int = 1, system_prompts: list[str] | None = None
) -> UpstreamRequest:
    return UpstreamRequest(
        request_id="r",
        reply_to="x",
        operation=Operation.CHAT,
        model_group="m",
        deployment_id="d/0",
        body=body,
        stream=stream,
        include_usage=False,
        deadline=0.0,
        received_at=0.0,
        caller=Caller(key_hash="k"),
        cost_cap=cost_cap,
        answers=answers,
        system_prompts=system_prompts or [],
    )


def test_a_capped_whole_answer_shares_its_allowance_among_its_answers_and_counts_the_policy_prompts() -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 4, "max_tokens": 900}'
    d = deployment(input_cost_per_token=1e-6, output_cost_per_token=1e-5)
    prompts = ["Answer in French."]
    req = request(body, stream=False, cost_cap=0.002, answers=4, system_prompts=prompts)
    assert prompt_bytes_of(req) == len(body) + len(prompts[0])
    allowance = completion_allowance(price_for(d, "x") or PRICE, 0.002, prompt_bytes_of(req))
    meter, capped = apply_cost_cap(req, RequestBody(body), d, "x")
    assert meter is None
    assert capped.fields()["max_tokens"] == allowance // 4 < 900


def chunk(
    content: str | None = None, *, text: str | None = None, arguments: str | None = None, usage: int | None = None
) -> bytes:
    choice: dict = {"index": 0}
    if text is not None:
        choice["text"] = text
    else:
        delta: dict = {"content": content}
        if arguments is not None:
            delta["tool_calls"] = [{"index": 0, "function": {"arguments": arguments}}]
        choice["delta"] = delta
    out: dict = {"choices": [choice]}
    if usage is not None:
        out["usage"] = {"completion_tokens": usage}
    return msgspec.json.encode(out)


def test_a_stream_meter_counts_tokens_of_the_text_not_chunks() -> None:
    words = [" internationalization" for _ in range(40)]
    meter = StreamMeter(allowance=10_000, model="gpt-4o")
    for w in words:
        assert meter.take(chunk(w))
    assert meter.estimate() == count_tokens("".join(words), "gpt-4o")
    # One chunk holding many tokens costs them all: a long chunk past the allowance is stopped.
    tight = StreamMeter(allowance=20, model="gpt-4o")
    long_text = " ".join(f"word{i}" for i in range(40))
    assert count_tokens(long_text, "gpt-4o") > 20
    assert not tight.take(chunk(long_text))
    assert tight.estimate() == 0  # (the chunk that was not relayed is not counted)
    # Tool arguments and legacy completions text count too; the tokenizer runs in batches.
    batch = StreamMeter(allowance=10_000, model="gpt-4o")
    assert batch.take(chunk(arguments='{"city": "Paris"}')) and batch.take(chunk(text=" and more"))
    assert batch.pending and batch.counted == 0 and batch.pending_bytes < COUNT_EVERY_BYTES
    assert batch.estimate() == count_tokens('{"city": "Paris"} and more', "gpt-4o")


def test_a_stream_meter_stops_where_the_allowance_ends_and_takes_the_providers_count() -> None:
    meter = StreamMeter(allowance=12, model="gpt-4o")
    relayed = 0
    while meter.take(chunk(" hello")):
        relayed += 1
        assert relayed < 100
    assert relayed == 12 and meter.estimate() == 12
    reported = StreamMeter(allowance=50, model="gpt-4o")
    assert reported.take(chunk(" hi"))
    reported.reported(45)  # the provider counted more than the text shows (reasoning, ...)
    assert reported.tokens == 45
    assert not reported.take(chunk(" " + " ".join(["x"] * 10)))
    assert reported.take(chunk("", usage=48)) is True and reported.tokens == 48


def test_a_native_answer_without_usage_is_estimated_from_its_bytes() -> None:
    usage = estimated_native_usage(101, 9)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (26, 3, True)
    assert estimated_native_usage(1, 1).completion_tokens == 1


def test_a_native_request_is_reserved_at_the_answer_length_its_api_names() -> None:
    assert requested_model(None, "/v1/messages", b'{"model": "c", "max_tokens": 7}') == ("c", False, 7)
    assert requested_model(None, "/v1/responses", b'{"model": "g", "max_output_tokens": 20}') == ("g", False, 20)
    gemini = b'{"contents": [], "generationConfig": {"maxOutputTokens": 9, "temperature": 0}}'
    import re

    path = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>\w+)")
    assert requested_model(path, "/v1beta/models/gem:streamGenerateContent", gemini) == ("gem", True, 9)
    assert requested_model(None, "/v1/embeddings", b'{"model": "e"}') == ("e", False, None)
