"""The upstream error policy itself: every kind of error, retry-after forms, truncation, scrubbing."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from llmgw.config import Deployment, Secret
from workers.providers.errors import (
    MAX_BODY_TEXT,
    MAX_MESSAGE,
    ErrorKind,
    ProviderError,
    body_text,
    credential_refused,
    error_kind,
    error_reader,
    failed_mid_answer,
    invalid_answer,
    invalid_request,
    retry_after_seconds,
    scrub_bytes,
    transport_error,
    upstream_error,
)

pytestmark = pytest.mark.unit

KEY = "sk-live-policy-secret-31"
DEPLOYMENT = Deployment(
    id="d/0",
    model_name="d",
    provider="openai",
    upstream_model="m",
    api_base="http://x/v1",
    api_key=Secret(KEY),
    extra=(("aws_secret_access_key", Secret("aws-secret-99")),),
)


def error(status: int, headers: dict[str, str] | None = None, body: bytes = b"", **fields) -> object:
    return upstream_error(status, ProviderError(**fields), DEPLOYMENT, httpx.Headers(headers or {}), body)


# ---- status and hints -> kind ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "hint", "kind"),
    [
        (401, None, ErrorKind.CREDENTIAL_REFUSED),
        (403, None, ErrorKind.CREDENTIAL_REFUSED),
        (429, None, ErrorKind.RATE_LIMITED),
        (400, None, ErrorKind.CLIENT_ERROR),
        (404, None, ErrorKind.CLIENT_ERROR),
        (408, None, ErrorKind.CLIENT_ERROR),
        (500, None, ErrorKind.UPSTREAM_FAILED),
        (503, None, ErrorKind.UPSTREAM_FAILED),  # only a provider that says so makes a 503 "unavailable"
        (0, None, ErrorKind.UPSTREAM_FAILED),  # an error event in a stream
        (400, ErrorKind.CREDENTIAL_REFUSED, ErrorKind.CREDENTIAL_REFUSED),
        (401, ErrorKind.OVERLOADED, ErrorKind.CREDENTIAL_REFUSED),  # a refused credential always wins
        (400, ErrorKind.RATE_LIMITED, ErrorKind.RATE_LIMITED),  # a hint overrides the status
        (429, ErrorKind.UNAVAILABLE, ErrorKind.UNAVAILABLE),
        (529, ErrorKind.OVERLOADED, ErrorKind.OVERLOADED),
        (408, ErrorKind.TIMEOUT, ErrorKind.TIMEOUT),
        (424, ErrorKind.UPSTREAM_FAILED, ErrorKind.UPSTREAM_FAILED),
        (400, ErrorKind.CONTEXT_WINDOW_EXCEEDED, ErrorKind.CONTEXT_WINDOW_EXCEEDED),
        (429, ErrorKind.CONTEXT_WINDOW_EXCEEDED, ErrorKind.RATE_LIMITED),  # "context window" only refines a 4xx
        (500, ErrorKind.CONTEXT_WINDOW_EXCEEDED, ErrorKind.UPSTREAM_FAILED),
    ],
)
def test_status_and_hint_decide_the_kind(status, hint, kind):
    assert error_kind(status, hint) is kind


# ---- kind -> what the client gets -----------------------------------------------------------------


def test_a_refused_credential_is_the_operators_problem_and_shows_nothing_of_the_answer():
    err = error(401, message=f"bad key {KEY}", kind="authentication_error")
    assert (err.status, err.type, err.code) == (502, "api_error", "upstream_error")
    assert err.message == "the upstream refused the credential of deployment d/0 (401 authentication_error)"
    assert error(403).message == "the upstream refused the credential of deployment d/0 (403)"
    assert credential_refused(DEPLOYMENT, 498).message.endswith("(498)")


def test_a_rate_limit_keeps_its_param_and_a_used_up_quota_its_code():
    err = error(429, {"retry-after": "3"}, message="slow down", code="rate_limit_exceeded", param="p")
    assert (err.status, err.type, err.code, err.param, err.retry_after) == (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        "p",
        3.0,
    )
    assert err.message == "slow down"
    assert error(429, code="insufficient_quota").code == "insufficient_quota"
    assert error(429, code="resource_exhausted").code == "rate_limit_exceeded"  # a provider's own name is not OpenAI's code


def test_overloaded_unavailable_and_timeout():
    overloaded = error(529, message="busy", hint=ErrorKind.OVERLOADED)
    assert (overloaded.status, overloaded.type, overloaded.code) == (503, "service_unavailable_error", "service_unavailable")
    assert overloaded.message == "the upstream is overloaded: busy"
    unavailable = error(503, message="loading", hint=ErrorKind.UNAVAILABLE, retry_after=20.5)
    assert (unavailable.status, unavailable.code, unavailable.retry_after) == (503, "service_unavailable", 20.5)
    assert unavailable.message == "the upstream is unavailable: loading"
    timeout = error(408, message="too slow", hint=ErrorKind.TIMEOUT)
    assert (timeout.status, timeout.type, timeout.code, timeout.message) == (
        504,
        "timeout_error",
        "timeout",
        "the upstream timed out: too slow",
    )
    assert timeout.retry_after is None


def test_client_errors_pass_through_with_the_providers_type_code_and_param():
    err = error(422, message="bad field", type="invalid_request_error", code="x", param="messages")
    assert (err.status, err.type, err.code, err.param, err.message) == (
        422,
        "invalid_request_error",
        "x",
        "messages",
        "bad field",
    )
    plain = error(404, message="no such model")
    assert (plain.status, plain.type, plain.code) == (404, "invalid_request_error", None)
    assert error(400, message="bad", retry_after=9.0).retry_after is None  # a delay only matters to a limit or an outage


def test_a_prompt_over_the_context_window_is_flagged_for_fallbacks():
    err = error(400, message="too long", hint=ErrorKind.CONTEXT_WINDOW_EXCEEDED, param="messages")
    assert (err.status, err.type, err.code, err.param) == (400, "invalid_request_error", "context_length_exceeded", "messages")


def test_server_errors_are_502_naming_the_status_and_the_providers_error():
    err = error(500, message="boom", kind="api_error")
    assert (err.status, err.type, err.code) == (502, "api_error", "upstream_error")
    assert err.message == "upstream error 500 api_error: boom"
    assert error(503, message="down").message == "upstream error 503: down"
    streamed = upstream_error(0, ProviderError(message="oops", kind="api_error"), DEPLOYMENT)
    assert streamed.status == 502 and streamed.message == "upstream error api_error: oops"


def test_the_message_is_the_providers_else_the_body_else_the_status():
    assert error(400, body=b"<html>bad</html>").message == "<html>bad</html>"  # the reader could not read it
    assert error(400, body=b"{}", message="").message == "upstream answered 400"  # read, but it said nothing
    assert error(400).message == "upstream answered 400"


# ---- retry-after ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), ("1.5", 1.5), (" 2 ", 2.0), ("0", 0.0), ("-1", None), ("soon", None), ("", None), (None, None), ("inf", None)],
)
def test_retry_after_in_seconds(value, seconds):
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert later == "Wed, 01 Jan 2025 12:00:30 GMT"
    assert retry_after_seconds(later, now) == 30.0
    assert retry_after_seconds("Wed, 01 Jan 2025 11:59:00 GMT", now) == 0.0  # passed already
    assert retry_after_seconds("Wed, 01 Jan 2025 12:00:30", now) is None  # no zone: not an HTTP date


def test_the_header_wins_over_a_delay_in_the_body_and_the_body_counts_without_one():
    assert error(429, {"retry-after": "4"}, retry_after=27.0).retry_after == 4.0
    assert error(429, {"retry-after": "later"}, retry_after=27.0).retry_after == 27.0
    assert error(429, retry_after=27.0).retry_after == 27.0
    assert error(429).retry_after is None


# ---- truncation and scrubbing -----------------------------------------------------------------------


def test_long_texts_are_cut():
    assert len(error(400, body=b"x" * 10_000).message) == MAX_BODY_TEXT
    assert len(error(400, message="y" * 10_000).message) == MAX_MESSAGE
    assert body_text("é".encode() * 300) == "é" * 300  # characters, not bytes


def test_secrets_are_scrubbed_from_messages_and_bodies():
    assert error(400, message=f"key {KEY} and aws-secret-99").message == "key *** and ***"
    assert error(400, body=f"<p>{KEY}</p>".encode()).message == "<p>***</p>"
    extra = upstream_error(400, ProviderError(message="token ya29.abc"), DEPLOYMENT, extra_secrets=["ya29.abc"])
    assert extra.message == "token ***"
    assert scrub_bytes(f'{{"k":"{KEY}"}}'.encode(), DEPLOYMENT) == b'{"k":"***"}'


def test_a_secret_cut_by_the_length_limit_leaves_no_part_behind():
    body = ("x" * (MAX_BODY_TEXT - 5) + KEY).encode()  # the key starts 5 characters before the cut
    message = error(400, body=body).message
    assert message == "x" * (MAX_BODY_TEXT - 5) + "***"
    assert KEY[:5] not in message


def test_errors_mid_answer_are_scrubbed_502s():
    err = failed_mid_answer(f"model crashed near {KEY}", DEPLOYMENT)
    assert (err.status, err.code, err.message) == (
        502,
        "upstream_error",
        "the upstream failed mid-answer: model crashed near ***",
    )
    assert failed_mid_answer("", DEPLOYMENT).message == "the upstream failed mid-answer: unknown error"


# ---- readers, the gateway's own errors, transport failures -----------------------------------------


def test_a_reader_becomes_an_error_reader():
    seen = []

    def read(status: int, body: bytes) -> ProviderError:
        seen.append((status, body))
        return ProviderError(message="slow", hint=ErrorKind.RATE_LIMITED)

    to_error = error_reader(read)
    err = to_error(400, b"{}", httpx.Headers({"retry-after": "2"}), DEPLOYMENT)
    assert seen == [(400, b"{}")] and (err.status, err.retry_after) == (429, 2.0)


def test_the_gateways_own_errors():
    refused = invalid_request("no tools here", "tools")
    assert (refused.status, refused.type, refused.code, refused.param) == (
        400,
        "invalid_request_error",
        "invalid_request_error",
        "tools",
    )
    broken = invalid_answer()
    assert (broken.status, broken.code, broken.message) == (502, "upstream_error", "the upstream answered with invalid JSON")


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (httpx.ReadTimeout("slow"), 504, "timeout"),
        (httpx.ConnectTimeout("refused"), 502, "upstream_unreachable"),
        (httpx.ConnectError("refused"), 502, "upstream_unreachable"),
        (httpx.RemoteProtocolError("reset"), 502, "upstream_error"),
    ],
)
def test_failures_below_http(exc, status, code):
    err = transport_error(exc, DEPLOYMENT)
    assert (err.status, err.code) == (status, code) and "d/0" in err.message
