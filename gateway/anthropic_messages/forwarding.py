"""`/v1/messages` and `/v1/messages/count_tokens` to an Anthropic deployment: forwarded as they came.

The request keeps its own bytes (every block, field and beta Anthropic knows reaches it) and the
answer comes back as Anthropic sent it. Of the client's headers only `anthropic-version` and
`anthropic-beta` go along, and of the betas only those that change how the one request is
answered: betas that reach past the request into the gateway's own Anthropic account, which all
of the gateway's callers share, or that bill what the gateway cannot meter, are dropped (the
request then gets Anthropic's own answer to a feature used without its beta):

- `oauth-*`: the gateway authenticates with its API key, not the client's OAuth token;
- `files-api-*`, `skills-*`: files and skills stored in the account, so another caller's;
- `mcp-client-*`: Anthropic calling out to servers the body names;
- `code-execution-*`: containers kept in the account and billed by the hour, not by token.
"""

from __future__ import annotations

from gateway.anthropic_messages.wire import anthropic_error_type, error_event
from gateway.asgi_io import Scope
from gateway.errors import GatewayError
from gateway.routes import Headers
from llmgw.contracts import Chunks, Completed, ErrorCode, ErrorType, NativeCall

DROPPED_BETA_PREFIXES = ("oauth-", "files-api-", "skills-", "mcp-client-", "code-execution-")
_KEPT_QUERY = "beta=true"  # the SDK's beta client marks its calls so; Anthropic takes it as is


def kept_betas(value: str) -> str:
    """The comma-separated betas of an `anthropic-beta` header, without the dropped ones."""
    names = (name.strip() for name in value.split(","))
    return ",".join(name for name in names if name and not name.lower().startswith(DROPPED_BETA_PREFIXES))


def anthropic_headers(scope: Scope) -> list[tuple[str, str]]:
    """The client's `anthropic-version` and (kept) `anthropic-beta` headers, as forwarded."""
    version: str | None = None
    betas: list[str] = []
    for name, value in scope["headers"]:
        if name not in (b"anthropic-version", b"anthropic-beta"):
            continue
        text = value.decode("latin-1")
        if any(c in text for c in "\r\n\x00"):
            raise GatewayError(
                400,
                f"{name.decode()}: the header holds control characters",
                ErrorType.INVALID_REQUEST,
                ErrorCode.INVALID_REQUEST,
                name.decode(),
            )
        if name == b"anthropic-version":
            version = version or text.strip()
        elif kept := kept_betas(text):
            betas.append(kept)
    out = [("anthropic-version", version)] if version else []
    if betas:
        out.append(("anthropic-beta", ",".join(betas)))
    return out


def native_call(scope: Scope, path: str) -> NativeCall:
    """The forwarded call to `path` (below the deployment's API root) with the client's headers."""
    query = scope.get("query_string", b"").decode("latin-1")
    return NativeCall(
        method="POST",
        path=path,
        query=_KEPT_QUERY if query == _KEPT_QUERY else "",
        headers=[("content-type", "application/json"), *anthropic_headers(scope)],
    )


def _latin1(pairs: list[tuple[str, str]]) -> Headers:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


def whole_answer(reply: Completed) -> tuple[int, Headers, bytes]:
    """Anthropic's whole answer (its status, content type and `anthropic-*` headers kept)."""
    headers = _latin1([(k, v) for k, v in reply.headers if k != "content-type"])
    content_type = next((v for k, v in reply.headers if k == "content-type"), "application/json")
    headers.append((b"content-type", content_type.encode("latin-1")))
    return reply.status, headers, reply.body


class ForwardedStream:
    """Anthropic's event stream relayed as it comes; a failure after its start (the worker gone,
    the deadline) ends it with Anthropic's `error` event."""

    __slots__ = ()

    def head(self, first: Chunks) -> tuple[int, Headers]:
        return first.status or 200, _latin1(first.headers)

    def data(self, chunks: list[bytes]) -> bytes:
        return b"".join(chunks)

    def end(self) -> bytes:
        return b""

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes:
        return error_event(message, anthropic_error_type(status))


FORWARDED_STREAM = ForwardedStream()
