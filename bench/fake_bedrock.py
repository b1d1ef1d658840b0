"""Fake AWS Bedrock runtime for llmgw's tests: Converse, ConverseStream and InvokeModel (Titan
text embeddings), behind a real SigV4 check.

The wire format follows the public references:
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html
      (binary `application/vnd.amazon.eventstream` frames with prelude and message CRC32s;
      events messageStart, contentBlockStart, contentBlockDelta, contentBlockStop, messageStop,
      metadata; `exception` frames for errors in mid-stream)
  https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html
      (Titan Text Embeddings: {"inputText"} -> {"embedding", "inputTextTokenCount"})
  https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html (SigV4)
Errors are `{"message": ...}` with the error's name in `x-amzn-ErrorType`.

Authentication is checked the way AWS does it: the signature is recomputed from the request as
received (method, path as sent, the headers the client says it signed, the body's SHA-256) with
the known secret. An unknown access key id is 403 UnrecognizedClientException; a wrong
signature, scope or stale date is 403 InvalidSignatureException; no Authorization header is 403
MissingAuthenticationTokenException.

Tokens (deterministic): inputTokens + cacheReadInputTokens + cacheWriteInputTokens = words of every
text (system, messages, tool results) + number of messages; a text holding `cached:K` makes K of
them cache reads, `cachewrite:K` K cache writes. The reply is "w0 w1 ... w{n-1}", n = maxTokens
(else 8; stopReason max_tokens when n == maxTokens), outputTokens = n. With tools given and the last
user message mentioning "weather" (and holding no tool result), the reply is one toolUse of the
chosen (else first) tool with input {"location": "Paris"} and outputTokens = 10.
Embeddings: one InvokeModel per text, inputTextTokenCount = its words, a deterministic vector.

Faults by model id: fake-error-{400,403,429,500,503} (ValidationException, AccessDeniedException,
ThrottlingException, InternalServerException, ServiceUnavailableException; the 429 also carries
`retry-after: 2`, which the documentation does not promise, to test that it is relayed), fake-slow-<ms>;
streams: fake-stream-fail (three words, then the connection drops), fake-stream-throttle /
fake-stream-error (a throttlingException / modelStreamErrorException frame after two words),
fake-stream-corrupt (a frame with a wrong message CRC), fake-stream-no-metadata (ends after
messageStop).

CLI:  python -m bench.fake_bedrock --host 127.0.0.1 --port 0 --api-key SECRET
          [--access-key-id AKIAFAKEBEDROCK00001] [--region us-east-1] [--session-token T]
      (prints "READY <port>")
Code: handle, port = await start_fake(secret_access_key="..."); handle.base_url (the runtime root);
      handle.calls (the last calls' decoded bodies); handle.stats; await handle.stop()
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import math
import re
import struct
import sys
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import msgspec

from bench.fake_http import DropConnection, FakeServerHandle, Request, Response, StreamResponse, fake_cli, start_app

DEFAULT_ACCESS_KEY_ID = "AKIAFAKEBEDROCK00001"
DEFAULT_COMPLETION_TOKENS = 8
MAX_COMPLETION_TOKENS = 2000
TOOL_USE_TOKENS = 10
MAX_CLOCK_SKEW_S = 300
STREAM_FAULT_AFTER_WORDS = 2

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_ROUTE = re.compile(r"^/model/([^/]+)/(converse|converse-stream|invoke)$")
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?"
    r"SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$"
)
_CACHE = re.compile(r"cached:(\d+)")
_CACHE_WRITE = re.compile(r"cachewrite:(\d+)")
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

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
    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.headers = status, error_type, message, headers or {}


def _invalid(message: str) -> ApiError:
    return ApiError(400, "ValidationException", message)


def error_response(exc: ApiError) -> Response:
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": f"{exc.error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": str(uuid.uuid4()),
        **exc.headers,
    }
    return Response(exc.status, _encode({"message": exc.message}), headers)


# ---- SigV4 verification (independent of the adapter's signer) --------------------------------


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


# ---- event-stream framing ------------------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message, string headers only (value type 7)."""
    block = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode() for k, v in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(block) + len(payload), len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + block + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, body: dict) -> bytes:
    # Real events carry a `p` field of padding letters (it hides the payload's length).
    payload = _encode({**body, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"[: 1 + len(event_type)]})
    return frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload)


def exception_frame(exception_type: str, message: str) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, _encode({"message": message}))


# ---- the model ------------------------------------------------------------------------------


def _texts(blocks: list) -> list[str]:
    out = []
    for block in blocks:
        if not isinstance(block, dict):
            raise _invalid("each content block must be an object")
        if "text" in block:
            if not isinstance(block["text"], str) or not block["text"].strip():
                raise _invalid("The text field in the ContentBlock object is blank. Add text to the text field, and try again.")
            out.append(block["text"])
        elif "toolResult" in block:
            out.extend(_texts(block["toolResult"].get("content") or []))
    return out


@dataclass
class Plan:
    """What one Converse call answers."""

    input_tokens: int
    cache_read: int
    cache_write: int
    words: int = 0
    stop_reason: str = "end_turn"
    tool: str | None = None

    @property
    def output_tokens(self) -> int:
        return TOOL_USE_TOKENS if self.tool else self.words

    def usage(self) -> dict:
        usage = {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.cache_read + self.cache_write + self.output_tokens,
        }
        if self.cache_read or self.cache_write:
            usage["cacheReadInputTokens"], usage["cacheWriteInputTokens"] = self.cache_read, self.cache_write
        return usage


def plan_converse(body: dict) -> Plan:
    """Validate a Converse request the way Bedrock does and decide the answer."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("The messages field is required and must not be empty.")
    tools = ((body.get("toolConfig") or {}).get("tools")) or []
    texts = [s["text"] for s in body.get("system") or [] if isinstance(s, dict) and isinstance(s.get("text"), str)]
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), list):
            raise _invalid(f"messages.{i} must have a role (user or assistant) and a content list")
        if m["role"] != ("user" if i % 2 == 0 else "assistant"):
            raise _invalid("A conversation must start with a user message and alternate between user and assistant roles.")
        if any(isinstance(b, dict) and ("toolUse" in b or "toolResult" in b) for b in m["content"]) and not tools:
            raise _invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
        texts.extend(_texts(m["content"]))
    total = sum(len(t.split()) for t in texts) + len(messages)
    joined = " ".join(texts)
    read_match, write_match = _CACHE.search(joined), _CACHE_WRITE.search(joined)
    read = min(int(read_match.group(1)), total) if read_match else 0
    write = min(int(write_match.group(1)), total - read) if write_match else 0
    plan = Plan(total - read - write, read, write)
    limit = (body.get("inferenceConfig") or {}).get("maxTokens")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise _invalid("The maximum tokens you requested must be at least 1.")
    last = messages[-1]["content"]
    if tools and not any("toolResult" in b for b in last) and "weather" in " ".join(_texts(last)).lower():
        choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
        plan.tool = (choice.get("tool") or {}).get("name") or tools[0]["toolSpec"]["name"]
        plan.stop_reason = "tool_use"
        return plan
    plan.words = min(limit or DEFAULT_COMPLETION_TOKENS, MAX_COMPLETION_TOKENS)
    plan.stop_reason = "max_tokens" if plan.words == limit else "end_turn"
    return plan


def reply_text(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def tool_use_id() -> str:
    return "tooluse_" + uuid.uuid4().hex[:22]


@dataclass
class FakeStats:
    requests: int = 0
    by_model: dict[str, int] = field(default_factory=dict)
    auth_failures: int = 0

    def as_dict(self) -> dict:
        return {"requests": self.requests, "by_model": dict(self.by_model), "auth_failures": self.auth_failures}


class FakeBedrock:
    """The request handler: routing, SigV4, faults and answers."""

    def __init__(self, access_key_id: str, secret_access_key: str, region: str, session_token: str | None = None) -> None:
        self.access_key_id, self.secret, self.region, self.session_token = access_key_id, secret_access_key, region, session_token
        self.stats = FakeStats()
        self.calls: list[tuple[str, str, object]] = []  # (model, action, decoded body), the latest last

    async def handle(self, request: Request) -> Response | StreamResponse:
        if request.path == "/_fake/stats" and request.method == "GET":
            return Response(200, _encode(self.stats.as_dict()), {"Content-Type": "application/json"})
        if request.path == "/_fake/reset" and request.method == "POST":
            self.stats, self.calls = FakeStats(), []
            return Response(200, b'{"ok":true}', {"Content-Type": "application/json"})
        route = _ROUTE.match(request.path)
        if route is None or request.method != "POST":
            return error_response(ApiError(404, "UnknownOperationException", "The requested operation is not recognized."))
        self.stats.requests += 1
        try:
            verify_sigv4(request, self.access_key_id, self.secret, self.region, self.session_token)
        except ApiError as exc:
            self.stats.auth_failures += 1
            return error_response(exc)
        model, action = unquote(route.group(1)), route.group(2)
        self.stats.by_model[model] = self.stats.by_model.get(model, 0) + 1
        try:
            return await self._call(model, action, request.body)
        except ApiError as exc:
            return error_response(exc)

    async def _call(self, model: str, action: str, raw: bytes) -> Response | StreamResponse:
        if model in FAULTS:
            status, error_type, message, headers = FAULTS[model]
            raise ApiError(status, error_type, message, headers)
        if model.startswith("fake-slow-") and model.removeprefix("fake-slow-").isdigit():
            await asyncio.sleep(int(model.removeprefix("fake-slow-")) / 1000)
        try:
            body = _decode(raw)
        except msgspec.DecodeError:
            raise _invalid("Malformed input request, please reformat your input and try again.") from None
        self.calls = [*self.calls[-49:], (model, action, body)]
        if not isinstance(body, dict):
            raise _invalid("Malformed input request, please reformat your input and try again.")
        if action == "invoke":
            return self._invoke(model, body)
        plan = plan_converse(body)
        if action == "converse":
            return self._converse(plan)
        headers = {"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": str(uuid.uuid4())}
        return StreamResponse(self._stream(model, plan), headers=headers)

    def _converse(self, plan: Plan) -> Response:
        if plan.tool:
            content = [{"toolUse": {"toolUseId": tool_use_id(), "name": plan.tool, "input": {"location": "Paris"}}}]
        else:
            content = [{"text": reply_text(plan.words)}]
        body = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": plan.stop_reason,
            "usage": plan.usage(),
            "metrics": {"latencyMs": 12},
        }
        return Response(200, _encode(body), {"Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())})

    async def _stream(self, model: str, plan: Plan):
        yield event("messageStart", {"role": "assistant"})
        if plan.tool:
            start = {"toolUse": {"toolUseId": tool_use_id(), "name": plan.tool}}
            yield event("contentBlockStart", {"contentBlockIndex": 0, "start": start})
            for piece in ('{"location": ', '"Paris"}'):
                yield event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}})
        else:
            words = reply_text(plan.words).split(" ") if plan.words else []
            for i, word in enumerate(words):
                if i == STREAM_FAULT_AFTER_WORDS and model in STREAM_EXCEPTIONS:
                    yield exception_frame(*STREAM_EXCEPTIONS[model])
                    return
                if i == STREAM_FAULT_AFTER_WORDS + 1 and model == "fake-stream-fail":
                    raise DropConnection
                delta = {"contentBlockIndex": 0, "delta": {"text": word if i == 0 else " " + word}}
                message = event("contentBlockDelta", delta)
                if i == STREAM_FAULT_AFTER_WORDS and model == "fake-stream-corrupt":
                    message = message[:-4] + bytes(4)  # a wrong message CRC
                yield message
        yield event("contentBlockStop", {"contentBlockIndex": 0})
        yield event("messageStop", {"stopReason": plan.stop_reason})
        if model != "fake-stream-no-metadata":
            yield event("metadata", {"usage": plan.usage(), "metrics": {"latencyMs": 12}})

    def _invoke(self, model: str, body: dict) -> Response:
        if not model.startswith("amazon.titan-embed"):
            raise _invalid("This fake serves InvokeModel for Amazon Titan text embeddings only.")
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            raise _invalid("Malformed input request: #: required key [inputText] not found, please reformat your input.")
        v2 = "text-v2" in model
        dims = body.get("dimensions", 1024 if v2 else 1536)
        if "dimensions" in body and (not v2 or dims not in (256, 512, 1024)):
            raise _invalid(
                f"Malformed input request: #/dimensions: {dims} is not a valid enum value, please reformat your input."
            )
        seed = zlib.crc32(text.encode())
        vector = [round(math.sin(seed + k), 6) for k in range(dims)]
        tokens = len(text.split())
        out = {"embedding": vector, "inputTextTokenCount": tokens}
        if v2:
            out["embeddingsByType"] = {"float": vector}
        headers = {"Content-Type": "application/json", "X-Amzn-Bedrock-Input-Token-Count": str(tokens)}
        return Response(200, _encode(out), headers)


async def start_fake(
    host: str = "127.0.0.1",
    port: int = 0,
    secret_access_key: str = "fake-secret",
    access_key_id: str = DEFAULT_ACCESS_KEY_ID,
    region: str = "us-east-1",
    session_token: str | None = None,
) -> tuple[FakeServerHandle, int]:
    """Start the fake runtime on the running loop; returns (handle, actual port). `handle.app.calls`
    holds the last 50 authenticated calls as (model id, action, decoded JSON body)."""
    return await start_app(FakeBedrock(access_key_id, secret_access_key, region, session_token), host, port)


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(api_key="fake-secret")
    parser.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID)
    parser.add_argument("--region", default="us-east-1", help="the region signatures must be scoped to")
    parser.add_argument("--session-token", default=None, help="require this x-amz-security-token")


def main(argv: list[str] | None = None) -> None:
    fake_cli(
        "python -m bench.fake_bedrock",
        __doc__,
        lambda a: start_fake(a.host, a.port, a.api_key, a.access_key_id, a.region, a.session_token),
        argv,
        "the AWS secret access key requests must be signed with",
        _flags,
    )


if __name__ == "__main__":
    sys.exit(main())
