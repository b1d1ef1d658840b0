"""Bedrock runtime errors as the gateway's client should see them.

A failed call answers `{"message": "..."}` with the error's name in the `x-amzn-ErrorType` header
(sometimes followed by `:` and a namespace URL); a failure in the middle of ConverseStream arrives
as an event-stream frame with `:message-type` `exception` and the name (lowerCamelCase) in
`:exception-type`. Both go through one table. Reference: the Errors sections of
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode
from workers.providers.errors import ErrorKind, ProviderError, UpstreamError, upstream_error

# Errors that mean AWS refused the gateway's own credentials: an operator problem.
CREDENTIAL_ERRORS = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)
UNAVAILABLE_ERRORS = frozenset({"ModelNotReadyException", "ServiceUnavailableException"})
# The HTTP status each exception type of a stream stands for.
STREAM_EXCEPTION_STATUS = {
    "ThrottlingException": 429,
    "ValidationException": 400,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelStreamErrorException": 424,
    "ModelTimeoutException": 408,
}


class _ErrorBody(msgspec.Struct):
    message: str | None = None
    Message: str | None = None
    type_: str | None = msgspec.field(default=None, name="__type")


_error_decoder = msgspec.json.Decoder(_ErrorBody)


def error_type_name(raw: str | None) -> str:
    """`ThrottlingException:http://internal.amazon.com/...`, `com.amazon...#ThrottlingException`
    or `throttlingException` -> `ThrottlingException`."""
    name = (raw or "").split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return name[:1].upper() + name[1:]


def bedrock_hint(status: int, error_type: str) -> ErrorKind | None:
    """What an error type (or a status Bedrock gives its own meaning) says, in the order the
    types are checked: a refused credential, unavailable, throttled, timed out, the model failed."""
    if error_type in CREDENTIAL_ERRORS:
        return ErrorKind.CREDENTIAL_REFUSED
    if error_type in UNAVAILABLE_ERRORS or status == 503:
        return ErrorKind.UNAVAILABLE
    if error_type == "ThrottlingException" or status == 429:
        return ErrorKind.RATE_LIMITED
    if error_type == "ModelTimeoutException" or status == 408:
        return ErrorKind.TIMEOUT
    if status == 424:  # the model failed, not the request
        return ErrorKind.UPSTREAM_FAILED
    return None


def bedrock_error(status: int, error_type: str, message: str | None) -> ProviderError:
    """A Bedrock error as the policy reads it: a client error is `invalid_request_error`."""
    return ProviderError(
        message=message, kind=error_type or None, code=ErrorCode.INVALID_REQUEST, hint=bedrock_hint(status, error_type)
    )


def bedrock_http_error(status: int, body: bytes, headers: httpx.Headers, deployment: Deployment) -> UpstreamError:
    """A non-2xx answer of the Bedrock runtime: the error type in `x-amzn-ErrorType` (else the body's `__type`)."""
    try:
        parsed = _error_decoder.decode(body)
        message: str | None = parsed.message or parsed.Message or ""
        body_type = parsed.type_
    except msgspec.DecodeError:
        message, body_type = None, None
    error_type = error_type_name(headers.get("x-amzn-errortype") or body_type)
    return upstream_error(status, bedrock_error(status, error_type, message), deployment, headers, body)


def stream_exception(headers: Mapping[str, object], payload: bytes, deployment: Deployment) -> UpstreamError:
    """An `exception` (modelled) or `error` (unmodelled) frame of a ConverseStream answer."""
    if headers.get(":message-type") == "error":
        code = str(headers.get(":error-code") or "error")
        return upstream_error(
            502, bedrock_error(502, error_type_name(code), str(headers.get(":error-message") or "")), deployment
        )
    error_type = error_type_name(str(headers.get(":exception-type") or ""))
    try:
        message: str | None = _error_decoder.decode(payload).message or ""
    except msgspec.DecodeError:
        message = None
    status = STREAM_EXCEPTION_STATUS.get(error_type, 500)
    return upstream_error(status, bedrock_error(status, error_type, message), deployment, body=payload)
