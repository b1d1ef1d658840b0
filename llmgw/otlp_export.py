"""Finished spans sent over OTLP/HTTP (protobuf) in batches, from a thread of their own.

Configured as OpenTelemetry's SDKs are, by the environment
(https://opentelemetry.io/docs/specs/otel/protocol/exporter/ and
https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the URL as given) or `OTEL_EXPORTER_OTLP_ENDPOINT` (+
`/v1/traces`), `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` (`k=v,k2=v2`, values URL-encoded),
`OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` and `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION` (`gzip`), and
the batch settings `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`,
`OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (times in milliseconds).

The request path only appends a span to a queue; a full queue drops the span (counted). The
thread posts a batch when it is full or every schedule delay; a post that fails is retried while
the timeout allows (connection errors, 429, 502, 503, 504), then its spans are counted as lost."""

from __future__ import annotations

import gzip
import http.client
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import msgspec
import structlog

from llmgw.otlp_wire import AttributeValue, encode_request, encode_resource, encode_scope

if TYPE_CHECKING:
    from llmgw.tracing import Span

log = structlog.get_logger()

_RETRYABLE = {429, 502, 503, 504}
_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)


class OtlpSettings(msgspec.Struct, frozen=True):
    endpoint: str = "http://localhost:4318/v1/traces"
    headers: dict[str, str] = {}
    timeout_s: float = 10.0
    gzip: bool = False
    schedule_delay_s: float = 5.0
    max_queue_size: int = 2048
    max_batch_size: int = 512


def _headers(value: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in value.split(","):
        name, sep, text = item.partition("=")
        if sep and name.strip():
            found[unquote(name.strip())] = unquote(text.strip())
    return found


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(env[name])
    except (KeyError, ValueError):
        return default
    return value if value > 0 else default


def otlp_settings_from_env(env: Mapping[str, str]) -> OtlpSettings:
    """The exporter's settings, the traces-specific variable first, then the general one."""

    def either(name: str) -> str | None:
        return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}")

    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not endpoint:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
        endpoint = base.rstrip("/") + "/v1/traces"
    timeout = either("TIMEOUT")
    timeout_env = {"t": timeout} if timeout else {}
    batch = int(_number(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
    return OtlpSettings(
        endpoint=endpoint,
        headers=_headers(either("HEADERS") or ""),
        timeout_s=_number(timeout_env, "t", 10_000) / 1000,
        gzip=(either("COMPRESSION") or "").strip().lower() == "gzip",
        schedule_delay_s=_number(env, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000,
        max_queue_size=max(int(_number(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)), batch),
        max_batch_size=batch,
    )


class OtlpPoster:
    """One keep-alive connection to the endpoint; `post` says whether the collector took the body."""

    def __init__(self, settings: OtlpSettings) -> None:
        self.settings = settings
        url = urlsplit(settings.endpoint)
        self.https = url.scheme == "https"
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.https else 80)
        self.path = (url.path or "/v1/traces") + (f"?{url.query}" if url.query else "")
        self.headers = {**settings.headers, "Content-Type": "application/x-protobuf"}
        if settings.gzip:
            self.headers["Content-Encoding"] = "gzip"
        self.connection: http.client.HTTPConnection | None = None

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.connection is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self.connection = kind(self.host, self.port, timeout=timeout)
        else:
            self.connection.timeout = timeout
            if self.connection.sock is not None:
                self.connection.sock.settimeout(timeout)
        return self.connection

    def _once(self, body: bytes, timeout: float) -> int | None:
        """The answer's status, None when the connection failed."""
        try:
            connection = self._connect(timeout)
            connection.request("POST", self.path, body=body, headers=self.headers)
            answer = connection.getresponse()
            answer.read()
            if answer.will_close:
                self.close()
            return answer.status
        except (OSError, http.client.HTTPException):
            self.close()
            return None

    def post(self, body: bytes, stopping: threading.Event, retry: bool = True) -> bool:
        if self.settings.gzip:
            body = gzip.compress(body, compresslevel=6)
        deadline = time.monotonic() + self.settings.timeout_s
        for backoff in (*(_BACKOFF_S if retry else ()), None):
            status = self._once(body, max(deadline - time.monotonic(), 0.05))
            if status is not None and 200 <= status < 300:
                return True
            if status is not None and status not in _RETRYABLE:
                return False
            if backoff is None or time.monotonic() + backoff >= deadline or stopping.wait(backoff):
                return False
        return False

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class BatchExporter:
    """Queues finished spans and sends them in batches from its own daemon thread."""

    def __init__(self, settings: OtlpSettings, resource: Mapping[str, AttributeValue]) -> None:
        self.settings = settings
        self.resource = encode_resource(resource)
        self.scope = encode_scope("llmgw", "1")
        self.queue: deque[Span] = deque()
        self.poster = OtlpPoster(settings)
        self.exported_spans = 0
        self.failed_spans = 0  # (by the thread)
        self.dropped_spans = 0  # (by the request path: the queue was full)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self.thread.start()

    def add(self, span: Span) -> None:
        """Called on the request path: an append, and a wake-up when a batch is full."""
        queue = self.queue
        if len(queue) >= self.settings.max_queue_size:
            self.dropped_spans += 1
            return
        queue.append(span)
        if len(queue) >= self.settings.max_batch_size and not self.wake.is_set():
            self.wake.set()

    def _take(self) -> list[Span]:
        batch: list[Span] = []
        queue = self.queue
        while queue and len(batch) < self.settings.max_batch_size:
            batch.append(queue.popleft())
        return batch

    def lost_spans(self) -> int:
        return self.failed_spans + self.dropped_spans

    def _send(self, batch: list[Span], retry: bool = True) -> None:
        try:
            body = encode_request(self.resource, self.scope, batch)
            sent = self.poster.post(body, self.stopping, retry)
        except Exception:
            log.exception("trace_export_failed", spans=len(batch))
            sent = False
        if sent:
            self.exported_spans += len(batch)
        else:
            self.failed_spans += len(batch)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(self.settings.schedule_delay_s)
            self.wake.clear()
            while len(self.queue) >= self.settings.max_batch_size and not self.stopping.is_set():
                self._send(self._take())
            if self.queue and not self.stopping.is_set():
                self._send(self._take())

    def shutdown(self) -> None:
        """Stop the thread and send what is left, each post bounded by the timeout."""
        self.stopping.set()
        self.wake.set()
        self.thread.join(self.settings.timeout_s + 1)
        while self.queue:  # (one try each on the way out)
            self._send(self._take(), retry=False)
        self.poster.close()
