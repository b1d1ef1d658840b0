"""OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}` with the right status."""

from __future__ import annotations

from typing import Any

import msgspec
import nats.errors
import nats.js.errors
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap, Scope

from llmgw.contracts import ErrorCode, ErrorType

log = structlog.get_logger()

_encoder = msgspec.json.Encoder()


# Set in a request's scope state when its key was refused as unknown: a guess, which the failed
# authentication guard counts (a deleted, blocked or expired key is not a guess).
KEY_GUESS = "llmgw_key_guess"


class GatewayError(Exception):
    key_guess = False  # an unknown key was refused (see KEY_GUESS)

    def __init__(
        self,
        status: int,
        message: str,
        type: str = ErrorType.INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}


def error_json(message: str, type: str, code: str | None, param: str | None = None) -> bytes:
    return _encoder.encode({"error": {"message": message, "type": type, "param": param, "code": code}})


def error_response(exc: GatewayError, request_id: str | None = None) -> Response:
    headers = dict(exc.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return Response(
        content=error_json(exc.message, exc.type, exc.code, exc.param),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )


# Statuses Litestar raises itself (unknown route, wrong method, body too large, ...).
_HTTP_STATUS_TYPES = {
    400: (ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST),
    401: (ErrorType.AUTHENTICATION, ErrorCode.INVALID_API_KEY),
    403: (ErrorType.PERMISSION, ErrorCode.PERMISSION_DENIED),
    404: (ErrorType.NOT_FOUND, ErrorCode.NOT_FOUND),
    405: (ErrorType.INVALID_REQUEST, "method_not_allowed"),
    413: (ErrorType.INVALID_REQUEST, ErrorCode.PAYLOAD_TOO_LARGE),
}


def note_key_guess(scope: Scope | dict[str, Any], exc: GatewayError) -> None:
    if exc.key_guess:
        scope["state"][KEY_GUESS] = True


def handle_gateway_error(request: Request, exc: GatewayError) -> Response:
    note_key_guess(request.scope, exc)
    return error_response(exc)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    etype, code = _HTTP_STATUS_TYPES.get(status, (ErrorType.API, ErrorCode.INTERNAL))
    message = exc.detail if status < 500 else "internal error"
    if status == 404:
        message = f"no route {request.method} {request.url.path}"
    return error_response(GatewayError(status, message, etype, code, headers=dict(exc.headers or {})))


def bus_unavailable() -> GatewayError:
    """What a client is told when the bus cannot take or give its request: retry in a second."""
    return GatewayError(
        503,
        "the gateway's message bus is unavailable; retry shortly",
        ErrorType.UNAVAILABLE,
        ErrorCode.UNAVAILABLE,
        headers={"retry-after": "1"},
    )


# What NATS raises when nobody answers for the moment: the connection is down, or a JetStream
# stream or KV bucket has no leader (a cluster node lost, an election under way). A route that
# meets one (an admin write, a stored record read) answers 503 with `retry-after`, not 500.
BUS_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


def handle_bus_error(request: Request, exc: Exception) -> Response:
    log.warning("bus_unavailable", path=request.url.path, error=str(exc) or type(exc).__name__)
    return error_response(bus_unavailable())


def handle_unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, BUS_UNAVAILABLE_ERRORS):
        return handle_bus_error(request, exc)
    log.exception("unhandled_error", path=request.url.path)
    return error_response(GatewayError(500, "internal error", ErrorType.API, ErrorCode.INTERNAL))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    GatewayError: handle_gateway_error,
    HTTPException: handle_http_exception,
    **dict.fromkeys(BUS_UNAVAILABLE_ERRORS, handle_bus_error),
    Exception: handle_unexpected,
}
