"""The one upstream error policy: what the client gets when a provider call fails.

An adapter only reads its provider's error answer into a neutral `ProviderError` (the message,
the provider's own name and code for the error, and hints such as "credential refused" or
"overloaded" that only the provider's vocabulary can tell); `upstream_error` decides the rest:

    credential refused   401, 403, or the hint   -> 502 api_error / upstream_error (an operator problem)
    rate limited         429, or the hint        -> 429 rate_limit_error / rate_limit_exceeded, retry_after
    overloaded           the hint (e.g. 529)     -> 503 service_unavailable_error, retry_after
    unavailable          the hint (e.g. 503)     -> 503 service_unavailable_error, retry_after
    timeout              the hint                -> 504 timeout_error / timeout
    context window       the hint, on a 4xx      -> the status, code context_length_exceeded
    client error         other 4xx               -> the status, with the provider's type, code and param
    upstream failed      5xx and anything else   -> 502 api_error / upstream_error

A hint overrides the status (a 429 "model not ready" is unavailable; a 400 "throttled" is a rate
limit), except that a refused credential always wins and "context window" only refines a 4xx.
The delay to wait is the `retry-after` header (seconds, or an HTTP date), else one the provider
put in its body. Every message is scrubbed of the deployment's credentials (and any other secret
the call used) before it is cut to length, so no part of a secret survives the cut.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType

MAX_BODY_TEXT = 500  # characters of an unreadable error body shown to the client
MAX_MESSAGE = 4000  # characters of a provider's own error message shown to the client
_SCAN_BYTES = 4096  # an unreadable body is scrubbed over this many bytes before it is cut
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
INSUFFICIENT_QUOTA = "insufficient_quota"  # a used-up quota is not a limit to wait out: the code is kept


class UpstreamError(Exception):
    """The call failed; `status` is what the client gets."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = ErrorType.API,
        code: str | None = ErrorCode.UPSTREAM_ERROR,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after


class ErrorKind(StrEnum):
    """What went wrong, as far as the client is concerned (see the module docstring)."""

    CREDENTIAL_REFUSED = "credential_refused"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    CONTEXT_WINDOW_EXCEEDED = "context_window_exceeded"
    CLIENT_ERROR = "client_error"
    UPSTREAM_FAILED = "upstream_failed"


class ProviderError(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's error answer as its adapter read it, before the policy decides what it means."""

    message: str | None = None  # the provider's message; None: the body could not be read (its text is shown)
    kind: str | None = None  # the provider's own name for the error (`error.type`, a status name, an exception)
    type: str | None = None  # the error type a passed-through client error keeps (OpenAI's own vocabulary)
    code: str | None = None  # the error code a passed-through client error keeps
    param: str | None = None
    hint: ErrorKind | None = None  # what the provider's vocabulary says the error is, when the status does not
    retry_after: float | None = None  # seconds to wait, as the body said


# A provider's reader of its own error body: (HTTP status, body) -> what the body says.
ProviderErrorReader = Callable[[int, bytes], ProviderError]
# What adapters hand to a call: (status, body, headers, deployment) -> the error the client gets.
ErrorReader = Callable[[int, bytes, httpx.Headers, Deployment], UpstreamError]


# ---- the policy -------------------------------------------------------------------------------------


def error_kind(status: int, hint: ErrorKind | None) -> ErrorKind:
    if status in (401, 403) or hint is ErrorKind.CREDENTIAL_REFUSED:
        return ErrorKind.CREDENTIAL_REFUSED
    if hint is not None and hint is not ErrorKind.CONTEXT_WINDOW_EXCEEDED:
        return hint
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if 400 <= status < 500:
        return ErrorKind.CONTEXT_WINDOW_EXCEEDED if hint is ErrorKind.CONTEXT_WINDOW_EXCEEDED else ErrorKind.CLIENT_ERROR
    return ErrorKind.UPSTREAM_FAILED


def upstream_error(
    status: int,
    error: ProviderError,
    deployment: Deployment,
    headers: httpx.Headers | None = None,
    body: bytes = b"",
    extra_secrets: Iterable[str] = (),
) -> UpstreamError:
    """The error the client gets for a provider's error answer (`status` 0: an error event in a
    stream, which has no status of its own)."""
    kind = error_kind(status, error.hint)
    what = " ".join(part for part in (str(status) if status else "", error.kind or "") if part) or "error"
    if kind is ErrorKind.CREDENTIAL_REFUSED:
        return credential_refused(deployment, what)
    secrets = (*deployment.secrets(), *extra_secrets)
    if error.message is not None:
        message = scrub_text(error.message, secrets)[:MAX_MESSAGE]
    else:
        message = body_text(body, secrets)
    message = message or f"upstream answered {status or what}"
    if kind in (ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED, ErrorKind.UNAVAILABLE):
        retry = retry_after_seconds(headers.get("retry-after") if headers is not None else None)
        retry = retry if retry is not None else error.retry_after
        if kind is ErrorKind.RATE_LIMITED:
            code = INSUFFICIENT_QUOTA if error.code == INSUFFICIENT_QUOTA else ErrorCode.RATE_LIMITED
            return UpstreamError(429, message, ErrorType.RATE_LIMIT, code, error.param, retry_after=retry)
        state = "overloaded" if kind is ErrorKind.OVERLOADED else "unavailable"
        return UpstreamError(
            503, f"the upstream is {state}: {message}", ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE, retry_after=retry
        )
    if kind is ErrorKind.TIMEOUT:
        return UpstreamError(504, f"the upstream timed out: {message}", ErrorType.TIMEOUT, ErrorCode.TIMEOUT)
    if kind is ErrorKind.CONTEXT_WINDOW_EXCEEDED:
        return UpstreamError(status, message, error.type or ErrorType.INVALID_REQUEST, CONTEXT_LENGTH_EXCEEDED, error.param)
    if kind is ErrorKind.CLIENT_ERROR:
        return UpstreamError(status, message, error.type or ErrorType.INVALID_REQUEST, error.code, error.param)
    return UpstreamError(502, f"upstream error {what}: {message}", ErrorType.API, ErrorCode.UPSTREAM_ERROR)


def error_reader(read: ProviderErrorReader) -> ErrorReader:
    """An adapter's ErrorReader from its reader of error bodies."""

    def read_error(status: int, body: bytes, headers: httpx.Headers, deployment: Deployment) -> UpstreamError:
        return upstream_error(status, read(status, body), deployment, headers, body)

    return read_error


def credential_refused(deployment: Deployment, what: int | str) -> UpstreamError:
    """The provider refused the gateway's own credential: an operator problem, not the client's."""
    return UpstreamError(
        502,
        f"the upstream refused the credential of deployment {deployment.id} ({what})",
        ErrorType.API,
        ErrorCode.UPSTREAM_ERROR,
    )


# ---- errors the gateway finds itself ------------------------------------------------------------------


def invalid_request(message: str, param: str | None = None) -> UpstreamError:
    """A request the provider's API cannot express (400, before any call)."""
    return UpstreamError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def invalid_answer(what: str = "the upstream answered with invalid JSON") -> UpstreamError:
    return UpstreamError(502, what, ErrorType.API, ErrorCode.UPSTREAM_ERROR)


def failed_mid_answer(text: str, deployment: Deployment) -> UpstreamError:
    """A stream the provider ended with an error of its own after it had started answering."""
    message = scrub(text, deployment)[:MAX_MESSAGE] or "unknown error"
    return UpstreamError(502, f"the upstream failed mid-answer: {message}", ErrorType.API, ErrorCode.UPSTREAM_ERROR)


def transport_error(exc: httpx.HTTPError, deployment: Deployment) -> UpstreamError:
    """A failure below HTTP (timeout, refused, reset) as the client should see it."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        # (the aiohttp transport reports a refused connection as ConnectTimeout: unreachable)
        return UpstreamError(
            504, f"the upstream of deployment {deployment.id} did not answer in time", ErrorType.TIMEOUT, ErrorCode.TIMEOUT
        )
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return UpstreamError(
            502,
            f"the upstream of deployment {deployment.id} is unreachable ({type(exc).__name__})",
            ErrorType.API,
            ErrorCode.UPSTREAM_UNREACHABLE,
        )
    return UpstreamError(
        502,
        f"the connection to the upstream of deployment {deployment.id} broke off ({type(exc).__name__})",
        ErrorType.API,
        ErrorCode.UPSTREAM_ERROR,
    )


# ---- retry-after, error text, secrets -------------------------------------------------------------------


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A `retry-after` value in seconds: a number of seconds ("3", "1.5"), or an HTTP date (the
    seconds until then, 0 when it has passed); None when it is neither."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # (not an HTTP date: those are always GMT)
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def body_text(body: bytes, secrets: Iterable[str] = ()) -> str:
    """An error body the provider's reader could not read, as text for the client: scrubbed of
    `secrets`, then cut to MAX_BODY_TEXT characters."""
    return scrub_text(body[:_SCAN_BYTES].decode(errors="replace"), secrets)[:MAX_BODY_TEXT]


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text


def scrub(text: str, deployment: Deployment) -> str:
    """Remove the provider credentials from any text that came back from the upstream."""
    return scrub_text(text, deployment.secrets())


def scrub_bytes(data: bytes, deployment: Deployment) -> bytes:
    for secret in deployment.secrets():
        raw = secret.encode()
        if raw in data:
            data = data.replace(raw, b"***")
    return data
