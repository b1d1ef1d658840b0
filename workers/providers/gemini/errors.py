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
from workers.providers.errors import ErrorKind, ProviderError, UpstreamError, upstream_error
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
    """A RetryInfo retryDelay ("27s", "1.5s"; a bare number too) in seconds."""
    if not text:
        return None
    try:
        return float(text.strip().removesuffix("s"))
    except ValueError:
        return None


def google_error_to_provider_error(status: int, body: bytes) -> ProviderError:
    """Google's error model: a refused key is an ErrorInfo reason (even on a 400), the delay to
    wait a RetryInfo retryDelay, and 503 means the model is unavailable. A client error keeps the
    error's status name (lower-cased) as its code."""
    err = parse_google_error(body)
    if err is None:
        return ProviderError(hint=ErrorKind.UNAVAILABLE if status == 503 else None)
    reasons = {d.reason for d in err.details if d.reason}
    hint = ErrorKind.CREDENTIAL_REFUSED if reasons & _CREDENTIAL_REASONS else ErrorKind.UNAVAILABLE if status == 503 else None
    retry = next((retry_delay_seconds(d.retryDelay) for d in err.details if d.retryDelay), None)
    return ProviderError(message=err.message, code=err.status.lower() or None, hint=hint, retry_after=retry)


def google_error_to_upstream_error(
    status: int, body: bytes, headers: httpx.Headers, deployment: Deployment, extra_secrets: Iterable[str] = ()
) -> UpstreamError:
    """`extra_secrets`: credentials the deployment does not list itself (a Vertex access token)."""
    return upstream_error(status, google_error_to_provider_error(status, body), deployment, headers, body, extra_secrets)
