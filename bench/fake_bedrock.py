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
import math
import re
import sys
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import unquote

import msgspec

from bench.fake_bedrock_converse import Plan, plan_converse, reply_text, tool_use_id
from bench.fake_bedrock_errors import FAULTS, STREAM_EXCEPTIONS, ApiError, error_response, invalid
from bench.fake_bedrock_eventstream import event, exception_frame
from bench.fake_bedrock_sigv4 import verify_sigv4
from bench.fake_http import DropConnection, FakeServerHandle, Request, Response, StreamResponse, fake_cli, start_app

DEFAULT_ACCESS_KEY_ID = "AKIAFAKEBEDROCK00001"
STREAM_FAULT_AFTER_WORDS = 2

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_ROUTE = re.compile(r"^/model/([^/]+)/(converse|converse-stream|invoke)$")


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
            raise invalid("Malformed input request, please reformat your input and try again.") from None
        self.calls = [*self.calls[-49:], (model, action, body)]
        if not isinstance(body, dict):
            raise invalid("Malformed input request, please reformat your input and try again.")
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

    async def _stream(self, model: str, plan: Plan) -> AsyncIterator[bytes]:
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
            raise invalid("This fake serves InvokeModel for Amazon Titan text embeddings only.")
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            raise invalid("Malformed input request: #: required key [inputText] not found, please reformat your input.")
        v2 = "text-v2" in model
        dims = body.get("dimensions", 1024 if v2 else 1536)
        if "dimensions" in body and (not v2 or dims not in (256, 512, 1024)):
            raise invalid(f"Malformed input request: #/dimensions: {dims} is not a valid enum value, please reformat your input.")
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
