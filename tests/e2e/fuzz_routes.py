"""The routes the fuzz tests (tests/e2e/test_fuzz.py) cover: every operation of the public API's
OpenAPI document, those that take no input, the model routes sent to a served model, the paths
and methods the document must hold, and the routes it leaves out for a reason."""

from __future__ import annotations

import re

# Every operation of the document. (schemathesis' own `pytest.from_fixture` parametrization needs
# a pytest private attribute that pytest 9.2 removed, so each operation is a test of its own in
# test_fuzz.py, driven by the operation's Hypothesis strategy.)
OPERATIONS = [
    "POST /v1/chat/completions",
    "GET /v1/chat/completions",
    "GET /v1/chat/completions/{completion_id}",
    "POST /v1/chat/completions/{completion_id}",
    "DELETE /v1/chat/completions/{completion_id}",
    "GET /v1/chat/completions/{completion_id}/messages",
    "POST /v1/embeddings",
    "POST /v1/messages",
    "POST /v1/messages/count_tokens",
    "POST /v1/responses",
    "GET /v1/responses/{response_id}",
    "DELETE /v1/responses/{response_id}",
    "GET /v1/responses/{response_id}/input_items",
    "POST /v1/files",
    "GET /v1/files",
    "GET /v1/files/{file_id}",
    "DELETE /v1/files/{file_id}",
    "GET /v1/files/{file_id}/content",
    "POST /v1/batches",
    "GET /v1/batches",
    "GET /v1/batches/{batch_id}",
    "POST /v1/batches/{batch_id}/cancel",
    "POST /v1/audio/transcriptions",
    "POST /v1/audio/translations",
    "POST /v1/audio/speech",
    "POST /v1/completions",
    "POST /v1/images/generations",
    "POST /v1/moderations",
    "POST /v1/rerank",
    "POST /v2/rerank",
    "GET /v1/models",
    "POST /key/generate",
    "GET /key/info",
    "POST /key/update",
    "POST /key/delete",
    "GET /key/list",
    "POST /key/regenerate",
    "POST /key/block",
    "POST /key/unblock",
    "POST /user/new",
    "GET /user/info",
    "POST /user/update",
    "POST /user/delete",
    "POST /team/new",
    "GET /team/info",
    "POST /team/update",
    "POST /team/member_add",
    "POST /team/delete",
    "POST /key/{key}/regenerate",
    "POST /model/new",
    "POST /model/update",
    "PATCH /model/{model_id}/update",
    "POST /model/delete",
    "GET /model/info",
    "GET /v1/model/info",
    "GET /model_group/info",
    "GET /v1/model_group/info",
    "GET /user/list",
    "GET /team/list",
    "POST /team/member_update",
    "POST /team/member_delete",
    "POST /team/model/add",
    "POST /team/model/delete",
    "POST /team/block",
    "POST /team/unblock",
    "GET /credentials",
    "POST /credentials/set",
    "GET /policy/system_prompt",
    "POST /policy/system_prompt",
    "GET /spend/logs",
    "GET /global/spend/report",
    "GET /spend/reconciliation",
    "GET /spend/reconciliation/credentials",
    "POST /spend/reconciliation/credentials",
    "GET /health",
    "GET /health/live",
    "GET /health/ready",
    "GET /health/liveliness",
    "GET /health/readiness",
    "GET /routes",
    "GET /metrics",
    "GET /openapi.json",
]

# Operations that take no input have no invalid input to send.
WITHOUT_INPUT = (
    "GET /v1/models",
    "GET /metrics",
    "GET /health/live",
    "GET /health/ready",
    "GET /health/liveliness",
    "GET /health/readiness",
    "GET /routes",
    "GET /openapi.json",
    "GET /credentials",
    "GET /policy/system_prompt",
    "GET /spend/reconciliation/credentials",
)

# The model routes: valid bodies aimed at a served model go all the way to the upstream.
MODEL_OPERATIONS = [
    "POST /v1/chat/completions",
    "POST /v1/embeddings",
    "POST /v1/messages",
    "POST /v1/completions",
    "POST /v1/images/generations",
    "POST /v1/moderations",
    "POST /v1/rerank",
    "POST /v1/responses",
]

# Paths and methods the document must hold.
PUBLIC_ROUTES = [
    ("/v1/chat/completions", "post"),
    ("/v1/chat/completions", "get"),
    ("/v1/chat/completions/{completion_id}", "get"),
    ("/v1/chat/completions/{completion_id}", "post"),
    ("/v1/chat/completions/{completion_id}", "delete"),
    ("/v1/chat/completions/{completion_id}/messages", "get"),
    ("/v1/embeddings", "post"),
    ("/v1/models", "get"),
    ("/v1/messages", "post"),
    ("/v1/messages/count_tokens", "post"),
    ("/v1/responses", "post"),
    ("/v1/responses/{response_id}", "get"),
    ("/v1/responses/{response_id}", "delete"),
    ("/v1/responses/{response_id}/input_items", "get"),
    ("/v1/responses/{response_id}/cancel", "post"),
    ("/v1/chat/completions/{completion_id}/stream", "get"),
    ("/v1/files", "post"),
    ("/v1/files", "get"),
    ("/v1/files/{file_id}", "get"),
    ("/v1/files/{file_id}", "delete"),
    ("/v1/files/{file_id}/content", "get"),
    ("/v1/batches", "post"),
    ("/v1/batches", "get"),
    ("/v1/batches/{batch_id}", "get"),
    ("/v1/batches/{batch_id}/cancel", "post"),
    ("/v1/audio/transcriptions", "post"),
    ("/v1/audio/translations", "post"),
    ("/v1/audio/speech", "post"),
    ("/v1/completions", "post"),
    ("/v1/images/generations", "post"),
    ("/v1/moderations", "post"),
    ("/v1/rerank", "post"),
    ("/v2/rerank", "post"),
    ("/key/generate", "post"),
    ("/key/info", "get"),
    ("/key/update", "post"),
    ("/key/delete", "post"),
    ("/key/list", "get"),
    ("/user/new", "post"),
    ("/user/info", "get"),
    ("/team/new", "post"),
    ("/team/info", "get"),
    ("/health/live", "get"),
    ("/health/ready", "get"),
]

# Routes `/routes` lists that the document leaves out, and why.
UNDOCUMENTED = {
    path: "native passthrough: any method and path below the prefix, in the provider's own API"
    for path in ("/anthropic", "/azure", "/cohere", "/gemini", "/openai", "/vertex_ai")
}
# The admin console (gateway/console): pages, forms and static files for a browser signed in with a
# session cookie, not an API for programs (README's "Admin console").
CONSOLE_PREFIX = "/ui"
# The same routes, served without /v1 and under /openai and /openai/v1 (as the document's description says).
ALIAS_PREFIXES = ("/openai/v1", "/openai", "")


def documented_as(path: str, documented: set[str]) -> str | None:
    """The document's path a served route is (a path parameter written `{name:type}` is `{name}`)."""
    path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)
    if path in documented:
        return path
    for prefix in ALIAS_PREFIXES:
        if path.startswith(prefix + "/") and "/v1" + path.removeprefix(prefix) in documented:
            return "/v1" + path.removeprefix(prefix)
    return None
