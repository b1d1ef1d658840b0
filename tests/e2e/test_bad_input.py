"""Bad input at the edge, end to end: each answer has the exact status and the OpenAI error
fields (`error.code`, `error.param`) a client can act on, and never a 500.

The stack runs with a 64 KiB body limit and a max-tokens ceiling of 64 (`refuse`); a second
stack with the `clip` policy checks that a clipped request reaches the upstream with the limit.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.e2e.stack import MASTER_KEY, Stack

pytestmark = pytest.mark.e2e

MAX_BODY = 64 * 1024
TOKENS_LIMIT = 64
CLIP_LIMIT = 7
HELLO = [{"role": "user", "content": "Hello, how are you?"}]  # 4 words + 1 message = 5 prompt tokens
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def stack(nats_server, upstream, tmp_path_factory):
    env = {
        "LLMGW_MAX_BODY_BYTES": str(MAX_BODY),
        "LLMGW_MAX_TOKENS_LIMIT": str(TOKENS_LIMIT),
        "LLMGW_MAX_TOKENS_POLICY": "refuse",
    }
    s = Stack(tmp_path_factory.mktemp("stack"), nats_server.url, "e2ebadinput", upstream, env).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def clip_stack(nats_server, upstream, tmp_path_factory):
    env = {"LLMGW_MAX_TOKENS_LIMIT": str(CLIP_LIMIT), "LLMGW_MAX_TOKENS_POLICY": "clip"}
    s = Stack(tmp_path_factory.mktemp("clipstack"), nats_server.url, "e2ebadinputclip", upstream, env).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=20) as client:
        yield client


def post(http, stack, body, path: str = CHAT, headers: dict | None = None) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return http.post(
        stack.base_url + path, content=content, headers={**AUTH, "content-type": "application/json", **(headers or {})}
    )


def error_of(resp: httpx.Response, status: int, code: str | None, param: str | None) -> dict:
    """The OpenAI error object of `resp`, checked: status, code and param exactly; a request id."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert (error["code"], error["param"]) == (code, param), error
    assert error["message"] and error["type"]
    return error


def big_body(size: int) -> bytes:
    """A valid chat request of `size` bytes (the size alone is wrong with it)."""
    head = json.dumps({"model": "gpt-4", "messages": [{"role": "user", "content": ""}]}).encode()
    return head.replace(b'"content": ""', b'"content": "' + b"a" * (size - len(head)) + b'"')


# --- body size ----------------------------------------------------------------------------------------


def test_body_over_the_limit_announced_by_content_length_is_413(http, stack):
    body = big_body(MAX_BODY + 1)
    assert len(body) == MAX_BODY + 1
    resp = post(http, stack, body)
    error_of(resp, 413, "payload_too_large", None)
    assert resp.headers["x-request-id"].startswith("req-")
    # The body was not read: the connection ends with the answer, and the next request is served.
    assert resp.headers["connection"] == "close"
    assert post(http, stack, big_body(MAX_BODY // 2)).status_code == 200


def test_body_over_the_limit_sent_chunked_is_413(http, stack):
    body = big_body(MAX_BODY * 2)

    def chunks():
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    resp = http.post(stack.base_url + CHAT, content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert "content-length" not in resp.request.headers and resp.request.headers["transfer-encoding"] == "chunked"
    error_of(resp, 413, "payload_too_large", None)


def test_body_at_the_limit_is_served(http, stack):
    resp = post(http, stack, big_body(MAX_BODY))
    assert resp.status_code == 200, resp.text
    assert resp.json()["object"] == "chat.completion"


def test_admin_body_over_the_limit_is_413(http, stack):
    body = json.dumps({"key_alias": "x" * (MAX_BODY + 1)})
    error_of(post(http, stack, body, "/key/generate"), 413, "payload_too_large", None)


# --- malformed and invalid bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b'{"model": "gpt-4", "messages": [', b"not json", b"", b"\xff\xfe{}"], ids=["truncated", "text", "empty", "binary"]
)
def test_invalid_json_is_400(http, stack, body):
    error = error_of(post(http, stack, body), 400, "invalid_request_error", None)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": "Hello"}, "messages"),
        ({"model": 4}, "model"),
        ({"stream": "yes"}, "stream"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
        ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_wrong_type_is_400_naming_the_field(http, stack, change, param):
    body = {"model": "gpt-4", "messages": HELLO, **change}
    error_of(post(http, stack, body), 400, "invalid_request_error", param)


def test_a_missing_required_field_is_400_naming_it(http, stack):
    error_of(post(http, stack, {"messages": HELLO}), 400, "invalid_request_error", "model")
    error_of(post(http, stack, {"model": "gpt-4"}), 400, "invalid_request_error", "messages")
    error_of(
        post(http, stack, {"model": "gpt-4", "messages": [{"content": "hi"}]}), 400, "invalid_request_error", "messages[0].role"
    )


def test_an_unknown_role_is_400_naming_it(http, stack):
    body = {"model": "gpt-4", "messages": [HELLO[0], {"role": "wizard", "content": "hi"}]}
    error = error_of(post(http, stack, body), 400, "invalid_request_error", "messages[1].role")
    assert "wizard" in error["message"] or "Expected" in error["message"]


def test_empty_messages_are_400(http, stack):
    error_of(post(http, stack, {"model": "gpt-4", "messages": []}), 400, "invalid_request_error", "messages")


@pytest.mark.parametrize(
    ("field", "value"), [("temperature", 2.5), ("temperature", -0.1), ("top_p", 1.5), ("max_tokens", 0), ("n", 0), ("timeout", 0)]
)
def test_a_value_out_of_range_is_400_naming_the_field(http, stack, field, value):
    body = {"model": "gpt-4", "messages": HELLO, field: value}
    error_of(post(http, stack, body), 400, "invalid_request_error", field)


def test_empty_embeddings_input_is_400(http, stack):
    error_of(post(http, stack, {"model": "gpt-4", "input": []}, "/v1/embeddings"), 400, "invalid_request_error", "input")


def test_an_unknown_model_is_404_model_not_found(http, stack):
    resp = post(http, stack, {"model": "no-such-model", "messages": HELLO})
    error = error_of(resp, 404, "model_not_found", "model")
    assert error["type"] == "not_found_error" and "no-such-model" in error["message"]
    assert resp.headers["x-request-id"].startswith("req-")


# --- Authorization headers with junk ------------------------------------------------------------------

JUNK_AUTHORIZATION = {
    "basic-scheme": b"Basic dXNlcjpwYXNz",
    "token-scheme": b"Token " + MASTER_KEY.encode(),
    "empty": b"",
    "bearer-without-key": b"Bearer",
    "bearer-tab-junk": b"Bearer \tsk-\tjunk",
    "latin1-junk": b"Bearer \xe9\xff\xfe\x80\xa0junk",
    "invalid-utf8": b"Bearer sk-\xc3\x28\xa0\xa1",
    "ten-kb-key": b"Bearer sk-" + b"k" * 10240,
    "master-key-twice": f"Bearer {MASTER_KEY} {MASTER_KEY}".encode(),
}


@pytest.mark.parametrize("value", list(JUNK_AUTHORIZATION.values()), ids=list(JUNK_AUTHORIZATION))
def test_junk_authorization_is_401_on_every_kind_of_route(http, stack, value):
    headers = {"authorization": value, "content-type": "application/json"}
    body = json.dumps({"model": "gpt-4", "messages": HELLO})
    for method, path in [
        ("POST", CHAT),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
        ("GET", "/key/info"),
        ("POST", "/key/generate"),
    ]:
        resp = http.request(method, stack.base_url + path, headers=headers, content=body if method == "POST" else None)
        error = error_of(resp, 401, "invalid_api_key", None)
        assert error["type"] == "authentication_error", (path, error)


def raw_request(port: int, authorization: bytes) -> tuple[int, bytes]:
    """(status, body) of a chat request sent byte for byte: HTTP clients refuse to send these headers."""
    body = json.dumps({"model": "gpt-4", "messages": HELLO}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
        + authorization
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), content


def test_blank_or_control_character_authorization_is_refused_and_never_a_500(stack):
    # Whitespace around a header value is not part of it (RFC 9110 5.5): no key at all -> 401.
    for value in (b"   ", b"Bearer    "):
        status, content = raw_request(stack.port, value)
        assert status == 401 and json.loads(content)["error"]["code"] == "invalid_api_key", (value, content)
    # Control characters make the request malformed HTTP: the HTTP server answers 400 itself.
    for value in (b"Bearer \x00sk-x", b"Bearer \x01\x7f"):
        status, _ = raw_request(stack.port, value)
        assert status == 400, value


def test_junk_authorization_on_the_anthropic_route_is_an_anthropic_401(http, stack):
    resp = http.post(
        stack.base_url + "/v1/messages",
        headers={"authorization": b"Bearer \xff\xfe"},
        json={"model": "gpt-4", "max_tokens": 5, "messages": HELLO},
    )
    assert resp.status_code == 401
    assert resp.json()["type"] == "error" and resp.json()["error"]["type"] == "authentication_error"


# --- max_tokens ceiling -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_over_the_limit_is_refused_naming_the_field(http, stack, field):
    for value in (TOKENS_LIMIT + 1, 10**30):
        error = error_of(
            post(http, stack, {"model": "gpt-4", "messages": HELLO, field: value}), 400, "invalid_request_error", field
        )
        assert str(TOKENS_LIMIT) in error["message"]
    at_limit = post(http, stack, {"model": "gpt-4", "messages": HELLO, field: TOKENS_LIMIT})
    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json()["usage"]["completion_tokens"] == TOKENS_LIMIT


def test_max_tokens_over_the_limit_on_the_anthropic_route_is_refused(http, stack):
    resp = http.post(
        stack.base_url + "/v1/messages", headers=AUTH, json={"model": "gpt-4", "max_tokens": TOKENS_LIMIT + 1, "messages": HELLO}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error" and "max_tokens" in resp.json()["error"]["message"]


def test_max_tokens_over_the_limit_is_clipped_before_it_goes_upstream(http, clip_stack):
    resp = post(http, clip_stack, {"model": "gpt-4", "messages": HELLO, "max_tokens": 100_000})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    # The fake answers one word per token asked for: the upstream saw max_tokens == the limit.
    assert answer["choices"][0]["message"]["content"] == " ".join(f"w{i}" for i in range(CLIP_LIMIT))
    assert answer["choices"][0]["finish_reason"] == "length"
    request_id = resp.headers["x-request-id"]
    row = clip_stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (5, CLIP_LIMIT)
    assert row["status"] == "success"

    stream = post(http, clip_stack, {"model": "gpt-4", "messages": HELLO, "max_completion_tokens": 10**9, "stream": True})
    assert stream.status_code == 200
    words = [
        json.loads(line[6:])["choices"][0]["delta"].get("content")
        for line in stream.text.splitlines()
        if line.startswith("data: {")
    ]
    assert "".join(w or "" for w in words) == " ".join(f"w{i}" for i in range(CLIP_LIMIT))


def test_max_tokens_under_the_limit_is_sent_unchanged(http, clip_stack):
    resp = post(http, clip_stack, {"model": "gpt-4", "messages": HELLO, "max_tokens": 3})
    assert resp.status_code == 200 and resp.json()["usage"]["completion_tokens"] == 3


# --- client-supplied upstream settings ----------------------------------------------------------------


def test_client_supplied_api_base_and_key_are_not_used_upstream(http, stack):
    before = stack.upstream.stats()
    body = {
        "model": "gpt-4",
        "messages": HELLO,
        "max_tokens": 3,
        "api_base": "http://127.0.0.1:1/",
        "base_url": "http://127.0.0.1:1/v1",
        "api_key": "sk-attacker-supplied-0000",
        "api_version": "1999-01-01",
    }
    resp = post(http, stack, body)
    # Sent to 127.0.0.1:1 the request would fail (502 upstream_unreachable); with the client's key,
    # the upstream would refuse it (502 upstream_error).
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "w0 w1 w2"
    after = stack.upstream.stats()
    assert after["requests"] == before["requests"] + 1
    assert after["auth_failures"] == before["auth_failures"]
    assert after["by_model"].get("gpt-4o", 0) == before["by_model"].get("gpt-4o", 0) + 1
    request_id = resp.headers["x-request-id"]
    row = stack.usage_rows([request_id])[request_id]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (5, 3)
    assert (row["status"], row["http_status"], row["provider"], row["upstream_model"]) == ("success", 200, "openai", "gpt-4o")
    assert "sk-attacker-supplied-0000" not in stack.logs()
