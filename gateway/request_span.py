"""A request's span at the edge (when tracing is on, see llmgw/tracing.py): the root of its trace,
or a child of the client's own `traceparent`; a child span for each phase (auth, admission,
publish: timed as it runs, made once the answer was sent); the context the worker continues,
sent with the request on the bus."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any

from llmgw.contracts import UpstreamRequest
from llmgw.otlp_wire import AttributeValue
from llmgw.tracing import Span, SpanKind, Tracer, parent_context

if TYPE_CHECKING:
    from gateway.asgi_io import RequestLog

_OFF: AbstractContextManager[None] = nullcontext()


def _client_traceparent(scope: dict[str, Any]) -> str | None:
    for name, value in scope["headers"]:
        if name == b"traceparent":
            return value.decode("latin-1")
    return None


class _Phase:
    """Times one phase of a request (a class, not a generator: a third of the cost)."""

    __slots__ = ("name", "phases", "started")

    def __init__(self, phases: list[tuple[str, int, int]], name: str) -> None:
        self.phases = phases
        self.name = name
        self.started = 0

    def __enter__(self) -> None:
        self.started = time.time_ns()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.phases.append((self.name, self.started, time.time_ns()))


class RequestSpan:
    __slots__ = ("phases", "span", "tracer")

    def __init__(self, tracer: Tracer, scope: dict[str, Any], request_id: str, client_request_id: str | None) -> None:
        self.tracer = tracer
        self.phases: list[tuple[str, int, int]] = []
        attributes: dict[str, AttributeValue] = {
            "http.request.method": scope.get("method", ""),
            "url.path": scope.get("path", ""),
            "llmgw.request_id": request_id,
        }
        if client_request_id is not None:
            attributes["llmgw.client_request_id"] = client_request_id
        self.span: Span = tracer.start_span(
            f"{scope.get('method', '')} {scope.get('path', '')}",
            parent_context(_client_traceparent(scope)),
            SpanKind.SERVER,
            attributes=attributes,
        )

    def phase(self, name: str) -> AbstractContextManager[None]:
        """Time a phase; its child span is made when the request ends, after its answer was sent."""
        return _Phase(self.phases, name)

    def publishing(self, request: UpstreamRequest) -> str:
        """Note what is sent to the worker; the `traceparent` it continues the trace from."""
        self.span.set_attributes(
            {
                "gen_ai.operation.name": request.operation,
                "gen_ai.request.model": request.model_group,
                "llmgw.deployment_id": request.deployment_id,
                "llmgw.stream": request.stream,
            }
        )
        return self.span.traceparent()

    def end(self, log: RequestLog) -> None:
        self.span.set_attribute("http.response.status_code", log.status)
        if log.route is not None:
            self.span.set_attribute("http.route", log.route)
        if log.caller is not None:
            self.span.set_attribute("llmgw.caller", log.caller)
        if log.status >= 500:
            self.span.set_error(log.code or "")
        for name, started, ended in self.phases:
            self.tracer.start_span(name, self.span, start_ns=started).end(ended)
        self.span.end()


def phase(span: RequestSpan | None, name: str) -> AbstractContextManager[None]:
    """A child span of the request's for `name` (nothing when tracing is off)."""
    return _OFF if span is None else span.phase(name)
