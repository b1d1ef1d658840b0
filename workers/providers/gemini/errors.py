"""Google API errors as the gateway's client errors.

Google answers `{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT",
"details": [...]}}` (https://cloud.google.com/apis/design/errors), or a JSON array of such objects
from `streamGenerateContent` without `alt=sse`. The Gemini API refuses a wrong API key with a 400
whose ErrorInfo reason is API_KEY_INVALID, so that case is recognised by its reason, not its status.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx
import msgspec

from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType
from workers.providers.base import UpstreamError, scrub
from workers.providers.gemini.wire import ErrorEnvelope, GoogleError, error_decoder

_CREDENTIAL_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "ACCESS_TOKEN_EXPIRED", "ACCESS_TOKEN_TYPE_UNSUPPORTED"}
)


def parse_google_error(body: bytes) -> GoogleError | None:
    try:
        decoded = error_decoder.decode(body)
    except msgspec.DecodeError:
        return None
    envelope = decoded[0] if isinstance(decoded, list) and decoded else decoded
    return envelope.error if isinstance(envelope, ErrorEnvelope) else None


def retry_delay_seconds(text: str | None) -> float | None:
    """A `retry-after` header ("2") or a RetryInfo retryDelay ("27s", "1.5s") in seconds."""
    if not text:
        return None
    try:
        return float(text.strip().removesuffix("s"))
    except ValueError:
        return None


def scrub_all(text: str, deployment: Deployment, extra: Iterable[str] = ()) -> str:
    """`scrub`, and also credentials the deployment does not list itself (a Vertex access token)."""
    text = scrub(text, deployment)
    for secret in extra:
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text


def credential_refused(deployment: Deployment, status: int) -> UpstreamError:
    return UpstreamError(
        502,
        f"the upstream refused the credential of deployment {deployment.id} ({status})",
        ErrorType.API,
        ErrorCode.UPSTREAM_ERROR,
    )


def google_error_to_upstream_error(
    status: int, body: bytes, headers: httpx.Headers, deployment: Deployment, extra_secrets: Iterable[str] = ()
) -> UpstreamError:
    err = parse_google_error(body)
    if err is not None:
        message, google_status = err.message, err.status
        reasons = {d.reason for d in err.details if d.reason}
        retry = next((d.retryDelay for d in err.details if d.retryDelay), None)
    else:
        message, google_status, reasons, retry = body[:500].decode(errors="replace"), "", set(), None
    message = scrub_all(message or f"upstream answered {status}", deployment, extra_secrets)
    if status in (401, 403) or reasons & _CREDENTIAL_REASONS:
        # The provider refused the gateway's own credential: an operator problem, not the client's.
        return credential_refused(deployment, status)
    if status == 429:
        return UpstreamError(
            429,
            message,
            ErrorType.RATE_LIMIT,
            ErrorCode.RATE_LIMITED,
            retry_after=retry_delay_seconds(headers.get("retry-after")) or retry_delay_seconds(retry),
        )
    if 400 <= status < 500:
        return UpstreamError(status, message, ErrorType.INVALID_REQUEST, google_status.lower() or None)
    if status == 503:
        return UpstreamError(503, f"upstream unavailable: {message}", ErrorType.UNAVAILABLE, ErrorCode.UNAVAILABLE)
    return UpstreamError(502, f"upstream error {status}: {message}", ErrorType.API, ErrorCode.UPSTREAM_ERROR)
