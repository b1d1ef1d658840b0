"""The fake Bedrock runtime's errors (see fake_bedrock.py): `{"message": ...}` with the error's
name in `x-amzn-ErrorType`, and the faults chosen by model id, as answers and as `exception`
frames in mid-stream:
  https://docs.aws.amazon.com/bedrock/latest/APIReference/CommonErrors.html
"""

from __future__ import annotations

import uuid

import msgspec

from bench.fake_http import Response

_encode = msgspec.json.Encoder().encode

# model id -> (status, x-amzn-ErrorType, message, extra headers)
FAULTS: dict[str, tuple[int, str, str, dict[str, str]]] = {
    "fake-error-400": (400, "ValidationException", "The provided request is not valid (fake-error-400).", {}),
    "fake-error-403": (403, "AccessDeniedException", "You don't have access to the model with the specified model ID.", {}),
    "fake-error-429": (429, "ThrottlingException", "Too many requests, please wait before trying again.", {"retry-after": "2"}),
    "fake-error-500": (500, "InternalServerException", "The server encountered an internal error.", {}),
    "fake-error-503": (503, "ServiceUnavailableException", "The service is temporarily unable to handle the request.", {}),
}
STREAM_EXCEPTIONS = {
    "fake-stream-throttle": ("throttlingException", "Too many tokens, please wait before trying again."),
    "fake-stream-error": ("modelStreamErrorException", "The model stream failed."),
}


class ApiError(Exception):
    """An error answer of the runtime: its status, `x-amzn-ErrorType`, message and extra headers."""

    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.headers = status, error_type, message, headers or {}


def invalid(message: str) -> ApiError:
    """Bedrock's 400 for a request it cannot take."""
    return ApiError(400, "ValidationException", message)


def error_response(exc: ApiError) -> Response:
    """The answer AWS sends for the error."""
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": f"{exc.error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": str(uuid.uuid4()),
        **exc.headers,
    }
    return Response(exc.status, _encode({"message": exc.message}), headers)
