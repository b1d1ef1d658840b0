"""One request in the edge's pipeline (gateway/pipeline.py): what is known of it so far, for its
end and its log line."""

from __future__ import annotations

import time

from gateway.admission import Lease
from gateway.asgi_io import RequestLog, Scope
from gateway.auth import Principal
from gateway.request_ids import client_request_id, new_request_id
from gateway.request_span import RequestSpan
from gateway.routes import Call


def policy_bytes(system_prompts: list[str]) -> int:
    """The prompt bytes the policy's system prompts add to a request."""
    return sum(len(p.encode()) for p in system_prompts)


class Exchange:
    """One request in the pipeline: what is known of it so far, for its end and its log line."""

    __slots__ = (
        "answered_by",
        "call",
        "client_request_id",
        "detached",
        "first_reply_after",
        "job_key",
        "lease",
        "log",
        "model_group",
        "principal",
        "provider",
        "published",
        "request_id",
        "span",
        "started",
    )

    def __init__(self, scope: Scope) -> None:
        self.started = time.time()
        self.request_id = new_request_id()
        self.client_request_id = client_request_id(scope)
        self.log = RequestLog(self.request_id, self.started, scope, self.client_request_id)
        self.principal: Principal | None = None  # once the key was checked
        self.call: Call | None = None  # once the body was read
        self.provider: str | None = None  # of the deployment first in line, once the model is known
        self.model_group = ""  # once the model is known
        self.lease: Lease | None = None
        self.published = False  # a worker has (or will have) the request: it meters it
        self.answered_by: str | None = None
        self.first_reply_after: float | None = None
        self.span: RequestSpan | None = None  # when tracing is on
        self.detached = False  # a background job ends it, not its HTTP request
        self.job_key: str | None = None  # that job's id (gateway/background.py)

    @property
    def answer_id(self) -> bytes:
        """The answer's `x-request-id`: the client's own id when it sent a valid one."""
        return (self.client_request_id or self.request_id).encode()
