"""What a route tells the pipeline (gateway/pipeline.py): how its requests are read and how its
answers and errors are written. Everything else about a request's life is the pipeline's.

A route reads the request into a `Call` (the model asked for, the body for the worker, and what
the request may cost at worst), may complete it with what it needs from the bus once the caller
is known (`resolve`, such as a stored conversation the request continues), names the deployments that may serve it (`target`), may adapt
the call to the deployment admission chose (`prepare`), and writes whole answers (`whole`),
streams (`stream`, a `StreamEncoder`) and errors (`error_body`); `answered` runs once an answer
went out in full (a route that keeps answers, such as stored responses, keeps them there).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol

from gateway.asgi_io import Message, Receive, Scope, Send, request_headers
from gateway.auth import Principal
from gateway.errors import GatewayError, error_json
from llmgw.config import Deployment
from llmgw.contracts import Chunks, Completed, NativeCall, Units

if TYPE_CHECKING:
    from gateway.edge import Edge
    from gateway.responses.events import Kept

Headers = list[tuple[bytes, bytes]]


def openai_paths(suffix: str) -> list[str]:
    """Served at /v1/..., at /... (seed 001), and under /openai (seed 000's OPENAI_BASE_URL)."""
    return [f"/v1/{suffix}", f"/{suffix}", f"/openai/v1/{suffix}", f"/openai/{suffix}"]


class Incoming:
    """The request line and the headers the pipeline reads (a route may add what it needs)."""

    __slots__ = ("api_key", "authorization", "content_length", "content_type", "path", "query")

    def __init__(self, authorization: str | None, api_key: str | None, content_length: int | None) -> None:
        self.authorization = authorization
        self.api_key = api_key  # a key sent in a header of its own (api-key, x-api-key, ...)
        self.content_length = content_length
        self.content_type: str | None = None  # routes that take uploads read it
        self.path = ""  # native routes: the checked path below the provider's prefix
        self.query: list[tuple[str, str]] = []  # native routes: the query string's pairs


class Call:
    """What a route read from the request: the model asked for, the body for the worker, and what
    admission needs to know of its worst case."""

    __slots__ = (
        "body",
        "include_usage",
        "max_tokens",
        "model",
        "n",
        "native",
        "operation",
        "prompt_bytes",
        "sent_to",
        "state",
        "stream",
        "timeout",
        "units",
    )

    def __init__(
        self,
        model: str,
        body: bytes,
        *,
        stream: bool = False,
        include_usage: bool = False,
        max_tokens: int | None = None,
        n: int = 1,
        units: Units | None = None,
        timeout: float | None = None,
        native: NativeCall | None = None,
        operation: str | None = None,
        prompt_bytes: int | None = None,
    ) -> None:
        self.model = model  # as the client named it
        self.body = body  # what goes to the worker
        self.stream = stream
        self.include_usage = include_usage
        self.max_tokens = max_tokens  # the completion length asked for (the budget's worst case)
        self.n = n  # answers asked for (n, best_of): the completion worst case is paid n times
        self.units = units  # the most it may use of units other than tokens (images, audio, ...)
        self.timeout = timeout  # seconds the client allows (at most the edge's request timeout)
        self.native = native
        self.operation = operation  # None: the route's own operation
        # The most prompt tokens the request may use, counted as bytes (a token is at least one);
        # None: the body's length. Uploads say less than their size (an audio file's tokens).
        self.prompt_bytes = prompt_bytes
        self.state: Any = None  # the route's own, from parse to answered (a stream's translator, ...)
        # A background job taken over from an edge that died (gateway/job_takeover.py): the
        # deployment its request was sent to, which `target` takes as first (a route choosing
        # how to write its answer by it chooses as that edge did).
        self.sent_to: str | None = None


class Target:
    """The model group a call goes to and the deployments that may serve it, in order."""

    __slots__ = ("candidates", "context_fallbacks", "fallbacks", "model_group")

    def __init__(
        self,
        model_group: str,
        candidates: list[Deployment],
        fallbacks: list[str] | None = None,
        context_fallbacks: list[str] | None = None,
    ) -> None:
        self.model_group = model_group
        self.candidates = candidates  # the first one first
        self.fallbacks = fallbacks or []  # deployment ids of fallback groups
        self.context_fallbacks = context_fallbacks or []


class StreamEncoder(Protocol):
    """How a route writes a stream the worker relays: its head, its chunks, its end, its errors."""

    def head(self, first: Chunks) -> tuple[int, Headers]: ...

    def data(self, chunks: list[bytes]) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, status: int, message: str, type: str, code: str | None) -> bytes: ...


class Background(Protocol):
    """A request its client does not wait for (the Responses API's `background: true`): the
    client is answered once the request is on the work queue (`accepted`), and the rest of its
    life runs in a task the edge owns, the answer written to `send` as it would be to a client
    that never goes away; `ended` closes it, whatever happened."""

    key: str  # the id the client knows it by (and cancels it by)
    kind: str  # llmgw.contracts.JobKind: which route carries it on after a takeover
    created_at: float  # epoch seconds, as its client reads it

    def queued(self, request_id: str, deadline: float) -> None:
        """It is on the work queue: record it (before its first reply can be handled)."""

    def resumed(self, request_id: str, deadline: float, created_at: float, kept: Kept) -> None:
        """It is carried on by an edge taking it over from one that died (gateway/job_takeover.py):
        its answer is written again from the start, and what of its events `kept` says is kept
        already is not kept again."""

    async def accepted(self, send: Send, receive: Receive, headers: Headers) -> None:
        """Answer the client (the job runs already)."""

    async def send(self, message: Message) -> None:
        """An ASGI message of the answer, as the pipeline writes it."""

    async def receive(self) -> Message:
        """What a client would say: nothing, ever (cancelling the job is what stops it)."""

    async def ended(self, error: GatewayError | None, reason: str | None) -> None:
        """The job is over: `error` when it failed before its answer started, `reason` when it
        was cancelled (gateway.background: CANCELLED, SHUTDOWN)."""


class Route(ABC):
    """What one kind of route does differently; everything else is the pipeline's."""

    operation: str  # llmgw.contracts.Operation
    post_only = True  # False: any method (native passthrough)
    policies = True  # system prompts, client-supplied upstreams and the router's fallbacks apply
    max_body_bytes: int | None = None  # None: the edge's LLMGW_MAX_BODY_BYTES

    def incoming(self, scope: Scope) -> Incoming:
        """The headers (and, for native routes, the checked path) before the key is checked."""
        return Incoming(*request_headers(scope))

    @abstractmethod
    def parse(self, scope: Scope, incoming: Incoming, body: bytes, edge: Edge) -> Call: ...

    async def resolve(self, edge: Edge, principal: Principal, call: Call) -> None:
        """Complete the call with what it needs from the bus, the caller known, before it is
        routed and its worst case counted (a stored conversation it continues, ...); by default
        nothing."""
        return

    def target(self, edge: Edge, principal: Principal, call: Call) -> Target:
        model = edge.access.resolve(principal, call.model)
        plan = edge.router.plan(model)
        return Target(model, plan.deployments, plan.fallbacks, plan.context_fallbacks)

    def prepare(self, edge: Edge, call: Call, deployment: Deployment) -> None:
        """Adapt the call to the deployment admission chose (its operation, its body); by default
        it goes as it is."""
        return

    def answer_id(self, call: Call, request_id: str) -> str | None:
        """The `id` the client's answer will carry when the route writes the answer itself (a
        translation), which the usage row records so `/spend/logs?request_id=` finds the request
        by it; None (the default): the upstream's, which the worker notes."""
        return None

    def whole(self, reply: Completed, call: Call, request_id: str) -> tuple[int, Headers, bytes]:
        """(status, headers, body) of a whole answer; the default: the worker's OpenAI JSON."""
        return 200, [(b"content-type", b"application/json")], reply.body

    @abstractmethod
    def stream(self, call: Call, request_id: str) -> StreamEncoder: ...

    def background(self, edge: Edge, principal: Principal, call: Call, request_id: str) -> Background | None:
        """The call's background job when its client does not wait for it; None (the default):
        the client waits for its answer."""
        return None

    def error_body(self, exc: GatewayError, request_id: str) -> bytes:
        """An error answered before anything else was sent; the default: OpenAI's shape."""
        return error_json(exc.message, exc.type, exc.code, exc.param)

    async def answered(self, edge: Edge, principal: Principal, call: Call, request_id: str, body: bytes | None) -> None:
        """An answer went out in full (`body`: a whole answer as sent; None: a stream, which the
        route's encoder saw); by default nothing more happens."""
        return
