"""SigV4 checked the way AWS checks it, for the fake Bedrock runtime (see fake_bedrock.py), independent
of the adapter's signer: the signature is recomputed from the request as received (method, path as
sent, the headers the client says it signed, the body's SHA-256) with the known secret:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from urllib.parse import quote

from bench.fake_bedrock_errors import ApiError
from bench.fake_http import Request

MAX_CLOCK_SKEW_S = 300

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?"
    r"SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$"
)
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def expected_signature(secret: str, request: Request, signed: list[str], amz_date: str, scope: str) -> str:
    """What AWS computes for this request: canonical request -> string to sign -> HMAC chain."""
    canonical = "\n".join(
        [
            request.method,
            quote(request.path, safe="/~"),  # each segment of the path as sent, encoded once more
            "",  # (no query string on Bedrock's runtime calls)
            "".join(f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def verify_sigv4(
    request: Request, access_key_id: str, secret: str, region: str, session_token: str | None, now: datetime | None = None
) -> None:
    """Raise the ApiError AWS would answer, or return when the signature holds."""
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.match(header)
    if match is None:
        raise ApiError(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
        )
    key_id, date, scope_region, service, signed_list, given = match.groups()
    if key_id != access_key_id:
        raise ApiError(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if session_token is not None and request.headers.get("x-amz-security-token") != session_token:
        raise ApiError(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    signed = signed_list.split(";")
    if "host" not in signed or "x-amz-date" not in signed or signed != sorted(signed):
        raise ApiError(403, "InvalidSignatureException", "'Host' and 'X-Amz-Date' must be signed, in sorted order.")
    if session_token is not None and "x-amz-security-token" not in signed:
        raise ApiError(403, "InvalidSignatureException", "'X-Amz-Security-Token' must be signed.")
    amz_date = request.headers.get("x-amz-date", "")
    try:
        stamp = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ApiError(403, "IncompleteSignatureException", "X-Amz-Date must be in the ISO8601 basic format.") from None
    if abs(((now or datetime.now(UTC)) - stamp).total_seconds()) > MAX_CLOCK_SKEW_S:
        raise ApiError(403, "InvalidSignatureException", f"Signature expired: {amz_date} is out of the allowed clock skew.")
    if date != amz_date[:8] or scope_region != region or service != "bedrock":
        raise ApiError(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and to service 'bedrock', not {scope_region}/{service}.",
        )
    scope = f"{date}/{scope_region}/{service}/aws4_request"
    if not hmac.compare_digest(expected_signature(secret, request, signed, amz_date, scope), given):
        raise ApiError(403, "InvalidSignatureException", _SIGNATURE_MISMATCH)
