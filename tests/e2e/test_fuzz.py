"""The public API fuzzed from its own OpenAPI document (GET /openapi.json), with schemathesis.

Every operation of the document gets valid and invalid requests (bodies, query parameters)
drawn from the document by schemathesis, sent with the master key to a whole running gateway; the
model routes also get valid bodies aimed at a served model, with a budgeted key, so they go all
the way through budgets, worker and (fake) upstream. Each answer must be no 5xx, a
status and content type the document lists, a body matching the documented schema (and the
`x-request-id` header where documented), and must hold no stack trace and no secret: neither the
upstream's API key nor the master key, in the body or in a header.

The run is bounded (MAX_EXAMPLES per operation and mode) and derandomized, so CI sends the same
requests every time and the module stays around a minute.
"""

from __future__ import annotations

import os

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.audio_files import wav_tone
from tests.e2e.fuzz_routes import (
    CONSOLE_PREFIX,
    MODEL_OPERATIONS,
    OPERATIONS,
    PUBLIC_ROUTES,
    UNDOCUMENTED,
    WITHOUT_INPUT,
    documented_as,
)
from tests.e2e.stack import MASTER_KEY, UPSTREAM_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# Examples per operation and mode; raise it for a deeper local run (LLMGW_FUZZ_EXAMPLES=500).
MAX_EXAMPLES = int(os.environ.get("LLMGW_FUZZ_EXAMPLES", "30"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SECRETS = (UPSTREAM_KEY, MASTER_KEY)
TRACE_MARKERS = ("Traceback", 'File "')
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
HELLO = [{"role": "user", "content": "Hello, how are you?"}]
TONE = wav_tone(1.0)
MODEL = {"model": "openai/gpt-4o", "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-fuzz-runtime-model"}


def fuzz_config(base_url: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict({"base-url": base_url, "request-timeout": 30, "generation": {"deterministic": True}})


@pytest.fixture(scope="module")
def api_schema(stack):
    return schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json", config=fuzz_config(stack.base_url))


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module")
def budgeted_key(stack, session) -> str:
    """A key with a budget: its requests go through the budget reservation (the master key's skip it).
    The budget is far past any worst case the fuzz draws (a `max_tokens` in the billions, held until
    metering settles it), so whether a request is served does not depend on the ones before it."""
    resp = session.post(
        f"{stack.base_url}/key/generate", headers=AUTH, json={"max_budget": 1e12, "key_alias": "fuzz"}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["key"]


def assert_no_leak(response, *more_secrets: str) -> None:
    """No stack trace in the body; no secret in the body or any header."""
    where = f"{response.request.method} {response.request.url}"
    text = response.content.decode("utf-8", errors="replace")
    for marker in TRACE_MARKERS:
        assert marker not in text, f"a stack trace in the body of {where}: {text[:2000]}"
    headers = "\n".join(f"{name}: {', '.join(values)}" for name, values in response.headers.items())
    for secret in (*SECRETS, *more_secrets):
        assert secret not in text, f"a secret in the body of {where}"
        assert secret not in headers, f"a secret in the headers of {where}"


def check(case, session, key: str = MASTER_KEY) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    response = case.call(session=session, headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)
    assert_no_leak(response, key)
    return response.status_code


def fuzz(strategy, session, key: str = MASTER_KEY) -> list[int]:
    """Send MAX_EXAMPLES requests drawn from `strategy` (a fixed sequence: derandomized), each
    checked; the statuses answered."""
    sent: list[int] = []

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink],
    )
    @hypothesis.given(case=strategy)
    def run(case):
        sent.append(check(case, session, key))

    run()
    return sent


RUNS = [
    pytest.param(label, mode, id=f"{label}-{mode.value}")
    for label in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or label not in WITHOUT_INPUT
]


def passive(case):
    """`/health?active=true` calls every deployment once, the fake's hanging ones until their
    deadline: the fuzzer reads the passive report (tests/e2e/test_deployment_health.py calls them)."""
    if isinstance(case.query, dict):
        case.query.pop("active", None)
    return case


@pytest.mark.parametrize(("label", "mode"), RUNS)
def test_every_operation_answers_as_documented(api_schema, session, label, mode):
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in /openapi.json"
    strategy = operation.as_strategy(generation_mode=mode)
    if label == "GET /health":
        strategy = strategy.map(passive)
    assert fuzz(strategy, session)  # the operation was exercised


# Integer fields of the request bodies. JSON Schema counts 5.0 as an integer, and the generator
# sends such values; the edge (msgspec) refuses them, so here they are sent as 5.
INTEGER_FIELDS = (
    "max_tokens",
    "max_completion_tokens",
    "n",
    "top_k",
    "dimensions",
    "best_of",
    "logprobs",
    "top_n",
    "max_tokens_per_doc",
    "output_compression",
    "max_output_tokens",
)


def on_a_configured_model(case):
    """A valid request sent to a model the gateway serves, so it goes all the way to the upstream.
    (Without a `timeout`: a deadline of a few nanoseconds is a 504 by design.)"""
    body = {**case.body, "model": "gpt-4"}
    body.pop("timeout", None)
    for name in INTEGER_FIELDS:
        if isinstance(body.get(name), float) and body[name].is_integer():
            body[name] = int(body[name])
    case.body = body
    return case


@pytest.mark.parametrize("label", MODEL_OPERATIONS)
def test_valid_requests_to_a_served_model_answer_as_documented(stack, api_schema, session, budgeted_key, label):
    """Random valid bodies on a served model, with a budgeted key: they reach the worker and the fake
    upstream (streams included) and pass through the budget reservation."""
    strategy = api_schema.find_operation_by_label(label).as_strategy(generation_mode=GenerationMode.POSITIVE)
    before = stack.upstream.stats()["requests"]
    statuses = fuzz(strategy.map(on_a_configured_model), session, budgeted_key)
    served = statuses.count(200)
    # Many went all the way upstream (the others were refused at the edge, e.g. an integral float
    # for an integer field, which msgspec does not take as an integer).
    assert served >= len(statuses) // 2, statuses
    assert stack.upstream.stats()["requests"] - before >= served


def test_the_document_is_openapi_3_1_with_every_public_route(stack):
    doc = requests.get(f"{stack.base_url}/openapi.json", timeout=10).json()
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A virtual key (sk-...) or the master key.",
    }
    for path, method in PUBLIC_ROUTES:
        assert method in doc["paths"][path], path
    chat = doc["components"]["schemas"]["ChatCompletionRequest"]
    assert chat["required"] == ["model", "messages"]
    assert {"minimum": 0, "maximum": 2}.items() <= chat["properties"]["temperature"]["anyOf"][0].items()
    roles = doc["components"]["schemas"]["ChatMessage"]["properties"]["role"]["enum"]
    assert sorted(roles) == ["assistant", "developer", "function", "system", "tool", "user"]
    assert doc["paths"]["/health/live"]["get"]["security"] == []


def test_every_route_the_edge_serves_is_in_the_document_or_undocumented_for_a_reason(stack):
    doc = requests.get(f"{stack.base_url}/openapi.json", timeout=10).json()
    documented = set(doc["paths"])
    served = requests.get(f"{stack.base_url}/routes", timeout=10).json()["routes"]
    assert len(served) > 50
    missing = []
    for route in served:
        if route["path"] in UNDOCUMENTED or route["path"] == CONSOLE_PREFIX or route["path"].startswith(CONSOLE_PREFIX + "/"):
            continue
        path = documented_as(route["path"], documented)
        if path is None:
            missing.append(route["path"])
            continue
        for method in route["methods"]:
            methods = set(doc["paths"][path]) - {"parameters"}
            # ("*": a raw ASGI route, which answers POST; others get 405.)
            assert (method.lower() if method != "*" else "post") in methods, (route, path)
    assert missing == [], missing
    for path in UNDOCUMENTED:
        assert path not in documented


def test_successful_answers_match_the_document(stack, api_schema, session):
    """The fuzzer mostly meets validation errors and unknown models: the 200 answers of real models
    (whole, streamed, embeddings, Anthropic messages, models, admin) are checked here."""
    cases = [
        ("/v1/chat/completions", "POST", {"body": {"model": "gpt-4", "messages": HELLO, "max_tokens": 3}}),
        ("/v1/chat/completions", "POST", {"body": {"model": "gpt-4", "messages": HELLO, "stream": True}}),
        ("/v1/embeddings", "POST", {"body": {"model": "gpt-4", "input": ["one", "two"]}}),
        ("/v1/messages", "POST", {"body": {"model": "gpt-4", "max_tokens": 4, "messages": HELLO}}),
        ("/v1/messages", "POST", {"body": {"model": "gpt-4", "max_tokens": 4, "messages": HELLO, "stream": True}}),
        ("/v1/responses", "POST", {"body": {"model": "gpt-4", "input": "hello"}}),
        ("/v1/responses", "POST", {"body": {"model": "gpt-4", "input": "hello", "stream": True}}),
        ("/v1/audio/transcriptions", "POST", {"body": {"model": "gpt-4", "file": TONE}, "media_type": "multipart/form-data"}),
        (
            "/v1/audio/translations",
            "POST",
            {"body": {"model": "gpt-4", "file": TONE, "response_format": "text"}, "media_type": "multipart/form-data"},
        ),
        ("/v1/audio/speech", "POST", {"body": {"model": "gpt-4", "input": "Hello", "voice": "alloy"}}),
        ("/v1/completions", "POST", {"body": {"model": "gpt-4", "prompt": "Hello there", "max_tokens": 3}}),
        ("/v1/completions", "POST", {"body": {"model": "gpt-4", "prompt": ["a", "b"], "stream": True}}),
        ("/v1/images/generations", "POST", {"body": {"model": "gpt-4", "prompt": "a fox", "n": 2}}),
        ("/v1/moderations", "POST", {"body": {"model": "gpt-4", "input": ["hello", "there"]}}),
        ("/v1/rerank", "POST", {"body": {"model": "gpt-4", "query": "a b", "documents": ["a", "b c"], "top_n": 1}}),
        ("/v2/rerank", "POST", {"body": {"model": "gpt-4", "query": "a", "documents": [{"text": "a"}]}}),
        ("/v1/models", "GET", {}),
        ("/key/generate", "POST", {"body": {"key_alias": "fuzz-ok", "models": ["gpt-4"]}}),
        ("/key/list", "GET", {"query": {"page": 1, "size": 5}}),
        ("/user/new", "POST", {"body": {"user_id": "fuzz-ok-user", "user_role": "app_user"}}),
        ("/user/info", "GET", {"query": {"user_id": "fuzz-ok-user"}}),
        ("/user/info", "GET", {"query": {"view_all": "true"}}),
        ("/team/new", "POST", {"body": {"team_id": "fuzz-ok-team", "members_with_roles": [{"user_id": "fuzz-ok-user"}]}}),
        ("/team/info", "GET", {"query": {"team_id": "fuzz-ok-team"}}),
        ("/model/new", "POST", {"body": {"model_name": "fuzz-ok-model", "litellm_params": MODEL, "model_info": {"id": "fz"}}}),
        ("/model/update", "POST", {"body": {"model_info": {"id": "fz", "tier": "b"}}}),
        ("/model/{model_id}/update", "PATCH", {"path_parameters": {"model_id": "fz"}, "body": {"model_name": "fuzz-ok-2"}}),
        ("/model/info", "GET", {}),
        ("/model/info", "GET", {"query": {"litellm_model_id": "fz"}}),
        ("/v1/model/info", "GET", {}),
        ("/model/delete", "POST", {"body": {"id": "fz"}}),
        ("/model_group/info", "GET", {}),
        ("/v1/model_group/info", "GET", {"query": {"model_group": "gpt-4"}}),
        ("/user/list", "GET", {"query": {"page": 1, "page_size": 5}}),
        ("/user/update", "POST", {"body": {"user_id": "fuzz-created-user", "user_role": "internal_user"}}),
        ("/team/list", "GET", {}),
        ("/team/member_add", "POST", {"body": {"team_id": "fuzz-ok-team", "member": {"user_id": "fuzz-created-user"}}}),
        ("/team/member_update", "POST", {"body": {"team_id": "fuzz-ok-team", "user_id": "fuzz-created-user", "role": "admin"}}),
        ("/team/member_delete", "POST", {"body": {"team_id": "fuzz-ok-team", "user_id": "fuzz-created-user"}}),
        ("/team/model/add", "POST", {"body": {"team_id": "fuzz-ok-team", "models": ["gpt-4", "slow"]}}),
        ("/team/model/delete", "POST", {"body": {"team_id": "fuzz-ok-team", "models": ["slow"]}}),
        ("/team/block", "POST", {"body": {"team_id": "fuzz-ok-team"}}),
        ("/team/unblock", "POST", {"body": {"team_id": "fuzz-ok-team"}}),
        ("/credentials", "GET", {}),
        ("/policy/system_prompt", "GET", {}),
        ("/policy/system_prompt", "POST", {"body": {"system_prompt": None, "team_id": "fuzz-ok-team"}}),
        ("/spend/logs", "GET", {"query": {"limit": 5}}),
        ("/global/spend/report", "GET", {"query": {"group_by": "model"}}),
        ("/health", "GET", {"query": {"model": "gpt-4"}}),
        ("/health/live", "GET", {}),
        ("/health/ready", "GET", {}),
        ("/health/liveliness", "GET", {}),
        ("/health/readiness", "GET", {}),
        ("/routes", "GET", {}),
        ("/openapi.json", "GET", {}),
    ]
    for path, method, parts in cases:
        case = api_schema[path][method].Case(**parts)
        response = case.call(session=session, headers=AUTH)
        assert response.status_code == 200, (path, response.status_code, response.content[:500])
        case.validate_response(response, checks=CHECKS, headers=AUTH)
        assert_no_leak(response)


def test_max_tokens_past_the_float_range_with_a_budgeted_key_is_not_a_server_error(stack, session, budgeted_key):
    body = b'{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + str(10**400).encode() + b"}"
    resp = session.post(
        f"{stack.base_url}/v1/chat/completions",
        data=body,
        timeout=10,
        headers={"Authorization": f"Bearer {budgeted_key}", "content-type": "application/json"},
    )
    assert resp.status_code < 500, resp.text
    assert "Traceback" not in resp.text
