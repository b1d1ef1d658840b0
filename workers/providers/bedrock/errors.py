"""Bedrock runtime errors as the gateway's client should see them.

A failed call answers `{"message": "..."}` with the error's name in the `x-amzn-ErrorType` header
(sometimes followed by `:` and a namespace URL); a failure in the middle of ConverseStream arrives
as an event-stream frame with `:message-type` `exception` and the name (lowerCamelCase) in
`:exception-type`. Both go through one table. Reference: the Errors sections of
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
"""

from __future__ import annotations

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType
from workers.providers.base import UpstreamError, scrub

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


def bedrock_error(status: int, error_type: str, message: str, retry_after: str | None, deployment: Deployment) -> UpstreamError:
    message = scrub(message or f"Bedrock answered {status}", deployment)
    if error_type in CREDENTIAL_ERRORS or status in (401, 403):
        return UpstreamError(
            502,
            f"Bedrock refused the credentials of deployment {deployment.id} ({error_type or status})",
            ErrorType.API,
            ErrorCode.UPSTREAM_ERROR,
        )
    if error_type in UNAVAILABLE_ERRORS or status == 503:
        return UpstreamError(503, message, ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE)
    if error_type == "ThrottlingException" or status == 429:
        seconds = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
        return UpstreamError(429, message, ErrorType.RATE_LIMIT, ErrorCode.RATE_LIMITED, retry_after=seconds)
    if error_type == "ModelTimeoutException" or status == 408:
        return UpstreamError(504, message, ErrorType.TIMEOUT, ErrorCode.TIMEOUT)
    if 400 <= status < 500 and status != 424:  # 424: the model failed, not the request
        return UpstreamError(status, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST)
    name = f" {error_type}" if error_type else ""
    return UpstreamError(502, f"Bedrock error {status}{name}: {message}", ErrorType.API, ErrorCode.UPSTREAM_ERROR)


def bedrock_http_error(status: int, body: bytes, headers: httpx.Headers, deployment: Deployment) -> UpstreamError:
    """A non-2xx answer of the Bedrock runtime."""
    try:
        parsed = _error_decoder.decode(body)
        message = parsed.message or parsed.Message or ""
        body_type = parsed.type_
    except msgspec.DecodeError:
        message, body_type = body[:500].decode(errors="replace"), None
    error_type = error_type_name(headers.get("x-amzn-errortype") or body_type)
    return bedrock_error(status, error_type, message, headers.get("retry-after"), deployment)


def stream_exception(headers: dict, payload: bytes, deployment: Deployment) -> UpstreamError:
    """An `exception` (modelled) or `error` (unmodelled) frame of a ConverseStream answer."""
    if headers.get(":message-type") == "error":
        code = str(headers.get(":error-code") or "error")
        return bedrock_error(502, error_type_name(code), str(headers.get(":error-message") or ""), None, deployment)
    error_type = error_type_name(str(headers.get(":exception-type") or ""))
    try:
        message = _error_decoder.decode(payload).message or ""
    except msgspec.DecodeError:
        message = payload[:500].decode(errors="replace")
    status = STREAM_EXCEPTION_STATUS.get(error_type, 500)
    return bedrock_error(status, error_type, message, None, deployment)
