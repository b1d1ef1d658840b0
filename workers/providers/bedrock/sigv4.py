"""AWS Signature Version 4 for the Bedrock runtime (header signing, no SDK).

Reference: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
A canonical request (method, URI, query, the signed headers, the payload's SHA-256) is hashed into
a string to sign, which is HMAC-ed with a key derived from the secret, the date, the region and the
service. AWS recomputes the same from the request it receives, so the URI signed here must be the
path exactly as it goes on the wire: every service but S3 URI-encodes each path segment once more
when it builds the canonical URI (a model id's `%2F` is signed as `%252F`).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import parse_qsl, quote

import msgspec

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class AwsCredentials(msgspec.Struct, frozen=True):
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def amz_date(now: datetime | None = None) -> str:
    """`20150830T123600Z`: the timestamp format of `x-amz-date` (UTC, basic ISO 8601)."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def uri_encode(value: str, keep_slash: bool) -> str:
    """AWS's UriEncode: everything but the unreserved characters as %XX with upper-case hex."""
    return quote(value, safe="/~" if keep_slash else "~")


def canonical_query(query: str) -> str:
    """The query's parameters encoded and sorted by name, then value (empty for Bedrock's calls)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{uri_encode(k, False)}={uri_encode(v, False)}" for k, v in sorted(pairs))


def canonical_headers(headers: dict[str, str]) -> tuple[str, str]:
    """(the canonical header block, the signed-headers list): names lower-cased and sorted,
    values trimmed with inner runs of spaces collapsed."""
    items = sorted((name.lower(), " ".join(value.split())) for name, value in headers.items())
    block = "".join(f"{name}:{value}\n" for name, value in items)
    return block, ";".join(name for name, _ in items)


def canonical_request(method: str, path: str, query: str, headers: dict[str, str], payload_hash: str) -> tuple[str, str]:
    """(the canonical request, its signed-headers list). `path` is the path as sent on the wire."""
    block, signed = canonical_headers(headers)
    text = "\n".join([method.upper(), uri_encode(path or "/", True), canonical_query(query), block, signed, payload_hash])
    return text, signed


@lru_cache(maxsize=64)
def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The day's key for one region and service (cached: it changes once a day)."""
    key = hmac.new(f"AWS4{secret_access_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret_access_key: str, timestamp: str, region: str, service: str, canonical: str) -> str:
    date = timestamp[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = signing_key(secret_access_key, date, region, service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    credentials: AwsCredentials,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    payload_hash: str,
    region: str,
    service: str,
) -> str:
    """The `Authorization` header value for a request whose signed headers are exactly `headers`
    (which must hold `host` and `x-amz-date`)."""
    timestamp = headers.get("x-amz-date") or headers["X-Amz-Date"]
    canonical, signed = canonical_request(method, path, query, headers, payload_hash)
    sig = signature(credentials.secret_access_key, timestamp, region, service, canonical)
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    return f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, SignedHeaders={signed}, Signature={sig}"


def signed_headers(
    credentials: AwsCredentials,
    method: str,
    host: str,
    path: str,
    body: bytes,
    region: str,
    service: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers that authenticate a request to an AWS service: host, x-amz-date,
    x-amz-content-sha256, x-amz-security-token (temporary credentials) and authorization."""
    headers = {"host": host, "x-amz-date": amz_date(now), "x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    headers["authorization"] = authorization(
        credentials, method, path, "", headers, headers["x-amz-content-sha256"], region, service
    )
    return headers
